//! How each instruction moves the value stack and where control goes next.
//!
//! Effects are `(consumed, produced)`: slots an instruction takes off the stack
//! and slots it puts back, *not* counting slots it only peeks at (so `FOR_ITER`
//! consumes nothing while it has items). The net effect is checked against each
//! interpreter's `dis.stack_effect` by `tests/test_bytecode.py`; the split
//! follows `Python/bytecodes.c` (3.12, 3.13) and `Python/ceval.c` (3.11).

use crate::instr::{jump_target, Instr};
use crate::opcodes::{Op, Version};

/// Which way control leaves an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// The next instruction in code order.
    Fall,
    /// The jump target (for `FOR_ITER`: the exhaustion landing).
    Jump,
}

/// `(consumed, produced)` along `edge`, or `None` for an opcode the analysis
/// does not model (the code object is then left uninstrumented).
pub fn effect(ver: Version, ins: &Instr, edge: Edge) -> Option<(u32, u32)> {
    use Op::*;
    use Version::*;
    let a = ins.arg;
    let jump = edge == Edge::Jump;
    Some(match ins.op {
        Nop
        | Resume
        | ExtendedArg
        | Cache
        | JumpForward
        | JumpBackward
        | JumpBackwardNoInterrupt
        | SetupAnnotations
        | KwNames
        | MakeCell
        | CopyFreeVars
        | DeleteFast
        | DeleteName
        | DeleteGlobal
        | DeleteDeref
        | ReturnConst => (0, 0),
        PopTop | ReturnValue | PrintExpr | ImportStar | PopExcept | StoreName | StoreGlobal
        | StoreFast | StoreDeref | DeleteAttr | ExitInitCheck => (1, 0),
        PushNull | LoadBuildClass | LoadAssertionError | LoadConst | LoadName | LoadFast
        | LoadFastCheck | LoadFastAndClear | LoadClosure | LoadDeref | LoadClassderef
        | LoadLocals | GetLen | MatchMapping | MatchSequence | MatchKeys | ImportFrom
        | WithExceptStart | GetAnext => (0, 1),
        // The value sent in when a generator first resumes is on the stack
        // after RETURN_GENERATOR; `dis` models this only from 3.13 on.
        ReturnGenerator => (0, 1),
        LoadFastLoadFast => (0, 2),
        StoreFastStoreFast => (2, 0),
        StoreFastLoadFast => (1, 1),
        EndFor => match ver {
            V3_12 => (2, 0),
            _ => (1, 0),
        },
        EndSend => (2, 1),
        UnaryInvert
        | UnaryNegative
        | UnaryNot
        | UnaryPositive
        | ToBool
        | GetIter
        | GetYieldFromIter
        | GetAiter
        | GetAwaitable
        | ListToTuple
        | YieldValue
        | AsyncGenWrap
        | LoadFromDictOrDeref
        | LoadFromDictOrGlobals
        | CallIntrinsic1
        | ConvertValue
        | FormatSimple => (1, 1),
        BinaryOp | BinarySubscr | CompareOp | IsOp | ContainsOp | ImportName | CallIntrinsic2
        | FormatWithSpec | SetFunctionAttribute | PrepReraiseStar => (2, 1),
        BinarySlice => (3, 1),
        StoreSlice => (4, 0),
        StoreSubscr => (3, 0),
        DeleteSubscr | StoreAttr | EndAsyncFor => (2, 0),
        CheckExcMatch => (1, 1),
        CheckEgMatch => (2, 2),
        PushExcInfo => (1, 2),
        BeforeWith | BeforeAsyncWith => (1, 2),
        CleanupThrow => (3, 2),
        UnpackSequence => (1, a),
        UnpackEx => (1, (a & 0xff) + (a >> 8) + 1),
        BuildTuple | BuildList | BuildSet | BuildString => (a, 1),
        // `BUILD_SLICE 3` takes a step too; the compiler emits only 2 and 3.
        BuildSlice => (if a == 3 { 3 } else { 2 }, 1),
        BuildMap => (2 * a, 1),
        BuildConstKeyMap => (a + 1, 1),
        ListAppend | SetAdd | ListExtend | SetUpdate | DictUpdate | DictMerge => (1, 0),
        MapAdd => (2, 0),
        MatchClass => (3, 1),
        Copy => (0, 1),
        Swap => (a, a),
        RaiseVarargs => (a, 0),
        Reraise => (1 + a, a),
        LoadGlobal => (0, 1 + (a & 1)),
        LoadAttr => match ver {
            V3_11 => (1, 1),
            _ => (1, 1 + (a & 1)),
        },
        LoadMethod => (1, 2),
        LoadSuperAttr => (3, 1 + (a & 1)),
        // 3.11 splits a call over PRECALL (the arguments) and CALL (callable, NULL).
        Precall => (a, 0),
        Call => match ver {
            V3_11 => (2, 1),
            _ => (a + 2, 1),
        },
        CallKw => (a + 3, 1),
        CallFunctionEx => (3 + (a & 1), 1),
        MakeFunction => match ver {
            V3_13 => (1, 1),
            _ => (1 + (a & 0x0f).count_ones(), 1),
        },
        FormatValue => (1 + u32::from(a & 0x04 != 0), 1),
        PopJumpForwardIfFalse
        | PopJumpForwardIfTrue
        | PopJumpForwardIfNone
        | PopJumpForwardIfNotNone
        | PopJumpBackwardIfFalse
        | PopJumpBackwardIfTrue
        | PopJumpBackwardIfNone
        | PopJumpBackwardIfNotNone
        | PopJumpIfFalse
        | PopJumpIfTrue
        | PopJumpIfNone
        | PopJumpIfNotNone => (1, 0),
        JumpIfFalseOrPop | JumpIfTrueOrPop => {
            if jump {
                (0, 0)
            } else {
                (1, 0)
            }
        }
        // Exhausted: the iterator is popped. Otherwise it stays and the item is pushed.
        ForIter => {
            if jump {
                (1, 0)
            } else {
                (0, 1)
            }
        }
        Send => match (ver, jump) {
            (V3_11, true) => (2, 1),
            _ => (1, 1),
        },
        _ => return None,
    })
}

/// Whether control can continue to the next instruction in code order.
pub fn falls_through(op: Op) -> bool {
    use Op::*;
    !matches!(
        op,
        ReturnValue
            | ReturnConst
            | RaiseVarargs
            | Reraise
            | JumpForward
            | JumpBackward
            | JumpBackwardNoInterrupt
    )
}

/// Whether `op` may raise: instructions that cannot are never worth a handler.
/// `LOAD_FAST` may: 3.11 checks for an unbound local, and 3.12+ code gets
/// `LOAD_FAST_CHECK` in its place once instrumented.
pub fn can_raise(op: Op) -> bool {
    use Op::*;
    !matches!(
        op,
        Nop | Cache
            | ExtendedArg
            | PopTop
            | PushNull
            | LoadConst
            | StoreFast
            | Copy
            | Swap
            | JumpForward
            | JumpBackwardNoInterrupt
            | PopExcept
            | PushExcInfo
            | KwNames
            | Precall
            | LoadFastLoadFast
            | StoreFastStoreFast
            | StoreFastLoadFast
            | LoadClosure
            | ReturnConst
    )
}

/// Normal (non-exception) successors of `ins`: `(edge, target unit)`.
/// `FOR_ITER`'s exhaustion lands past `END_FOR` in 3.12 and past
/// `END_FOR; POP_TOP` in 3.13 (`Python/bytecodes.c`, `FOR_ITER`).
pub fn successors(ver: Version, ins: &Instr) -> Vec<(Edge, i64)> {
    let mut out = Vec::with_capacity(2);
    if falls_through(ins.op) {
        out.push((Edge::Fall, ins.end() as i64));
    }
    if let Some(t) = jump_target(ins, ver) {
        let t = match (ins.op, ver) {
            (Op::ForIter, Version::V3_12) => t + 1,
            (Op::ForIter, Version::V3_13) => t + 2,
            _ => t,
        };
        out.push((Edge::Jump, t));
    }
    out
}
