"""Coroutines that handle their own errors."""

import asyncio


async def fails():
    await asyncio.sleep(0)
    raise ValueError("in a coroutine")


async def main():
    try:
        await fails()
    except ValueError as e:
        print("caught", e)
    try:
        await asyncio.wait_for(asyncio.sleep(1), 0.01)
    except TimeoutError:
        print("timed out")
    return "done"


print(asyncio.run(main()))
