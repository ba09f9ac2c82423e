"""Applies operations to accounts created up front; one operation is malformed."""


class Account:
    def __init__(self, name):
        self.name = name
        self.balance = 0

    def apply(self, op):
        amount = int(op)  # @fail
        self.balance += amount
        return self.balance


def main():
    accounts = [Account("a"), Account("b")]
    ops = ["5", "7", "2.5", "1"]
    for i, op in enumerate(ops):
        accounts[i % 2].apply(op)  # @call
    print("balances", [(a.name, a.balance) for a in accounts])
    print("isinstance", all(isinstance(a, Account) for a in accounts))


if __name__ == "__main__":
    main()
