//! Stack-slot kinds and resume points ("statements") of one code object.
//!
//! A resume point is an instruction where the value stack holds only slots
//! whose kind is known (loop iterators, bound `__exit__`s, saved exception
//! states): jumping back to it with those slots in place is stack-correct. Its
//! region is every instruction reached from it before the next resume point,
//! as long as the slots below it stay untouched; those instructions are
//! *covered*: an exception there goes to the statement's stub.

use crate::fxhash::FxHashMap as HashMap;

use crate::effects::{can_raise, effect, successors, Edge};
use crate::error::{Error, Result};
use crate::exctable::{self, ExceptionEntry, Handler};
use crate::instr::{self, Instr};
use crate::linetable::{self, Position};
use crate::opcodes::{Op, Version};

/// What a value-stack slot holds, as far as the analysis can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotKind {
    /// A `for` loop's iterator (from `GET_ITER`).
    Iter,
    /// An `async for` loop's iterator (from `GET_AITER`).
    AsyncIter,
    /// A `with` block's bound `__exit__` (from `BEFORE_WITH`).
    WithExit,
    /// An `async with` block's bound `__aexit__`.
    AsyncWithExit,
    /// The exception state saved by `PUSH_EXC_INFO` (inside `except`/`finally`).
    ExcInfo,
    /// An exception object in flight (exceptional path of a `finally`).
    Exception,
    /// The `lasti` integer pushed by the unwinder for cleanup handlers.
    Lasti,
    /// Anything else, possibly `NULL`: never touched by a stub.
    Other,
}

impl SlotKind {
    /// Slots a statement may have below it.
    pub fn is_base(self) -> bool {
        !matches!(self, SlotKind::Other)
    }
    pub fn name(self) -> &'static str {
        match self {
            SlotKind::Iter => "iter",
            SlotKind::AsyncIter => "async_iter",
            SlotKind::WithExit => "with_exit",
            SlotKind::AsyncWithExit => "async_with_exit",
            SlotKind::ExcInfo => "exc_info",
            SlotKind::Exception => "exception",
            SlotKind::Lasti => "lasti",
            SlotKind::Other => "other",
        }
    }
}

/// What kind of place a resume point is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpKind {
    /// The start of a statement (or of a line of one).
    Statement,
    /// A `for` loop fetching its next item (`FOR_ITER`) and binding the target.
    LoopAdvance,
}

/// One resume point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePoint {
    pub index: u32,
    pub kind: RpKind,
    /// Code unit where the statement starts: "retry" jumps here.
    pub start: u32,
    /// Source line of the start.
    pub line: Option<i64>,
    /// The slots below the statement, bottom first.
    pub base: Vec<SlotKind>,
    /// The program's own handler in force at the statement (from the original table).
    pub handler: Option<Handler>,
    /// Where "skip" continues (a code unit whose stack is exactly `base`).
    pub skip_to: Option<u32>,
    /// Why "leave"/"rerun" are impossible here, if they are.
    pub leave_refusal: Option<&'static str>,
    /// Why handing the frame over to a continuation is impossible here, if it
    /// is: only the base slots matter (the continuation re-creates them and
    /// runs the program's handlers itself, `finally`s included).
    pub handover_refusal: Option<&'static str>,
    /// Number of covered instructions (that may raise).
    pub covered: u32,
}

impl ResumePoint {
    pub fn depth(&self) -> u32 {
        self.base.len() as u32
    }
}

/// Everything known about one code object.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub version: Version,
    pub instrs: Vec<Instr>,
    pub entries: Vec<ExceptionEntry>,
    /// Position of every code unit.
    pub positions: Vec<Position>,
    /// Stack kinds before each instruction (`None`: unreachable).
    pub stacks: Vec<Option<Vec<SlotKind>>>,
    /// Resume point owning each instruction.
    pub owner: Vec<Option<u32>>,
    /// Whether each instruction is routed to its owner's stub.
    pub covered: Vec<bool>,
    pub rps: Vec<ResumePoint>,
    /// Index of the first instruction after the prologue (after `RESUME 0`).
    pub body_start: usize,
    /// Largest stack depth seen.
    pub max_depth: u32,
    /// Code units in `co_code`.
    pub units: u32,
    /// Whether the slots below each instruction's owner are untouched there.
    pub intact: Vec<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Own {
    Unset,
    Rp(u32),
    Conflict,
}

impl Own {
    fn join(self, other: Own) -> Own {
        match (self, other) {
            (Own::Unset, x) | (x, Own::Unset) => x,
            (Own::Rp(a), Own::Rp(b)) if a == b => Own::Rp(a),
            _ => Own::Conflict,
        }
    }
}

/// The code of a handler, classified for "leave": can a frame return from
/// inside the region this handler protects without skipping user code?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerKind {
    /// `try: ... except ...:` dispatch (typed or bare `except`).
    Except,
    /// `except*` dispatch.
    ExceptStar,
    /// The cleanup of a `with` block after an exception.
    WithCleanup,
    /// `COPY 3; POP_EXCEPT; RERAISE 1`: leaving an `except` body on error.
    ExceptCleanup,
    /// `except E as e:` clearing `e`.
    AsCleanup,
    /// 3.12+: the implicit `StopIteration` → `RuntimeError` wrapper of generators.
    GeneratorWrapper,
    /// A `finally` body or anything not recognised.
    Other,
}

fn is_plain_load(op: Op) -> bool {
    use Op::*;
    matches!(
        op,
        LoadGlobal
            | LoadName
            | LoadFast
            | LoadFastCheck
            | LoadDeref
            | LoadClassderef
            | LoadAttr
            | LoadConst
            | BuildTuple
            | LoadFromDictOrGlobals
            | LoadFromDictOrDeref
            | LoadLocals
            | PushNull
    )
}

impl Analysis {
    /// Decode and analyse one code object.
    pub fn new(
        ver: Version,
        code: &[u8],
        exceptiontable: &[u8],
        linetable: &[u8],
        firstlineno: i64,
    ) -> Result<Analysis> {
        let instrs = instr::decode(code, ver)?;
        let entries = exctable::decode(exceptiontable)?;
        let units = (code.len() / 2) as u32;
        let positions =
            linetable::positions(&linetable::decode(linetable)?, firstlineno, units as usize);
        let mut a = Analysis {
            version: ver,
            stacks: vec![None; instrs.len()],
            owner: vec![None; instrs.len()],
            covered: vec![false; instrs.len()],
            instrs,
            entries,
            positions,
            rps: Vec::new(),
            body_start: 0,
            max_depth: 0,
            units,
            intact: Vec::new(),
        };
        a.body_start = a
            .instrs
            .iter()
            .position(|i| i.op == Op::Resume && i.arg == 0)
            .map(|p| p + 1)
            .unwrap_or(0);
        a.compute_stacks()?;
        a.find_resume_points();
        a.compute_coverage();
        a.compute_skip_targets();
        a.compute_leave();
        Ok(a)
    }

    fn index_at(&self, unit: i64) -> Option<usize> {
        if unit < 0 {
            return None;
        }
        let unit = unit as u32;
        let idx = self.instrs.partition_point(|i| i.offset < unit);
        (self.instrs.get(idx)?.offset == unit).then_some(idx)
    }

    /// The original handler in force at instruction `i`.
    pub fn handler_at(&self, i: usize) -> Option<Handler> {
        exctable::lookup(&self.entries, self.instrs[i].op_offset()).map(|e| e.handler())
    }

    /// Line of instruction `i`.
    pub fn line_of(&self, i: usize) -> Option<i64> {
        self.positions
            .get(self.instrs[i].op_offset() as usize)
            .and_then(|p| p.line)
    }

    /// Index of the instruction containing code unit `unit`.
    pub fn instr_at_unit(&self, unit: u32) -> Option<usize> {
        instr::index_of_unit(&self.instrs, unit)
    }

    fn produced_kinds(
        &self,
        ins: &Instr,
        stack: &[SlotKind],
        consumed: u32,
        produced: u32,
    ) -> Vec<SlotKind> {
        use Op::*;
        let n = stack.len();
        match ins.op {
            GetAiter => vec![SlotKind::AsyncIter],
            BeforeWith => vec![SlotKind::WithExit, SlotKind::Other],
            BeforeAsyncWith => vec![SlotKind::AsyncWithExit, SlotKind::Other],
            PushExcInfo => vec![SlotKind::ExcInfo, SlotKind::Exception],
            Copy => vec![stack[n - ins.arg as usize]],
            Swap => {
                let mut s = stack[n - consumed as usize..].to_vec();
                let last = s.len() - 1;
                s.swap(0, last);
                s
            }
            _ => vec![SlotKind::Other; produced as usize],
        }
    }

    fn merge(
        &mut self,
        target: usize,
        mut stack: Vec<SlotKind>,
        work: &mut Vec<usize>,
        at: u32,
    ) -> Result<()> {
        // What `FOR_ITER` iterates is a loop's iterator, whatever made it
        // (`GET_ITER`, a generator expression's `.0` argument). A `GET_ITER`
        // result on its way to a comprehension is still an expression value.
        if self.instrs[target].op == Op::ForIter {
            if let Some(top) = stack.last_mut() {
                *top = SlotKind::Iter;
            }
        }
        match &mut self.stacks[target] {
            slot @ None => {
                *slot = Some(stack);
                work.push(target);
            }
            Some(old) => {
                if old.len() != stack.len() {
                    return Err(Error::Stack {
                        offset: at,
                        reason: "stack depths disagree at a join",
                    });
                }
                let mut changed = false;
                for (o, n) in old.iter_mut().zip(stack) {
                    if *o != n && *o != SlotKind::Other {
                        *o = SlotKind::Other;
                        changed = true;
                    }
                }
                if changed {
                    work.push(target);
                }
            }
        }
        Ok(())
    }

    fn compute_stacks(&mut self) -> Result<()> {
        if self.instrs.is_empty() {
            return Ok(());
        }
        let ver = self.version;
        let mut work = vec![0usize];
        self.stacks[0] = Some(Vec::new());
        let mut guard = 0usize;
        while let Some(i) = work.pop() {
            guard += 1;
            if guard > 64 * self.instrs.len() + 1024 {
                return Err(Error::Stack {
                    offset: self.instrs[i].offset,
                    reason: "analysis does not converge",
                });
            }
            let stack = self.stacks[i].clone().unwrap_or_default();
            let ins = self.instrs[i].clone();
            self.max_depth = self.max_depth.max(stack.len() as u32);
            for (edge, target) in successors(ver, &ins) {
                let (c, p) = effect(ver, &ins, edge).ok_or(Error::Stack {
                    offset: ins.offset,
                    reason: "opcode not modelled",
                })?;
                if (stack.len() as u32) < c
                    || (ins.op == Op::Copy && stack.len() < ins.arg as usize)
                    || ins.op == Op::Copy && ins.arg == 0
                    || (ins.op == Op::Swap && ins.arg == 0)
                {
                    return Err(Error::Stack {
                        offset: ins.offset,
                        reason: "stack underflow",
                    });
                }
                let mut next = stack[..stack.len() - c as usize].to_vec();
                next.extend(self.produced_kinds(&ins, &stack, c, p));
                let t = self.index_at(target).ok_or(Error::BadJump {
                    offset: ins.offset,
                    target,
                })?;
                self.merge(t, next, &mut work, ins.offset)?;
            }
            if let Some(e) = exctable::lookup(&self.entries, ins.op_offset()).copied() {
                if stack.len() < e.depth as usize {
                    return Err(Error::Stack {
                        offset: ins.offset,
                        reason: "handler depth above the stack",
                    });
                }
                let mut next = stack[..e.depth as usize].to_vec();
                if e.lasti {
                    next.push(SlotKind::Lasti);
                }
                next.push(SlotKind::Exception);
                let t = self.index_at(e.target as i64).ok_or(Error::BadJump {
                    offset: ins.offset,
                    target: e.target as i64,
                })?;
                self.merge(t, next, &mut work, ins.offset)?;
            }
        }
        Ok(())
    }

    /// Line starts (as `dis.findlinestarts`) and loop heads with only known slots below.
    fn find_resume_points(&mut self) {
        // Lines start anew after the prologue: a body on the `def` line
        // (`def f(): return 1/0`) is a statement too.
        let mut last_line: Option<i64> = None;
        let mut line_start = vec![false; self.instrs.len()];
        for (i, ls) in line_start.iter_mut().enumerate().skip(self.body_start) {
            if let Some(l) = self.line_of(i) {
                if Some(l) != last_line {
                    *ls = true;
                    last_line = Some(l);
                }
            }
        }
        for i in self.body_start..self.instrs.len() {
            let Some(stack) = &self.stacks[i] else {
                continue;
            };
            let op = self.instrs[i].op;
            let kind = if op == Op::ForIter {
                RpKind::LoopAdvance
            } else if line_start[i] {
                RpKind::Statement
            } else {
                continue;
            };
            // Machinery of handlers and loops is never a statement start: running it
            // twice would corrupt the exception state or the loop.
            if matches!(
                op,
                Op::PushExcInfo
                    | Op::WithExceptStart
                    | Op::CheckExcMatch
                    | Op::CheckEgMatch
                    | Op::PopExcept
                    | Op::Reraise
                    | Op::EndFor
                    | Op::EndSend
                    | Op::EndAsyncFor
                    | Op::CleanupThrow
                    | Op::Resume
                    | Op::ReturnGenerator
            ) {
                continue;
            }
            if !stack.iter().all(|k| k.is_base()) {
                continue;
            }
            // A statement in an exceptional `finally` path has the in-flight exception
            // on top; an exception on top anywhere else is handler machinery.
            if let Some(top) = stack.last() {
                if *top == SlotKind::Exception
                    && !(stack.len() >= 2 && stack[stack.len() - 2] == SlotKind::ExcInfo)
                {
                    continue;
                }
                if *top == SlotKind::Lasti {
                    continue;
                }
                // `except E:` matching also runs with the exception on top.
                if *top == SlotKind::Exception {
                    let matching = self.instrs[i..]
                        .iter()
                        .find(|x| {
                            !is_plain_load(x.op)
                                && !matches!(x.op, Op::Copy | Op::Swap | Op::BuildList)
                        })
                        .is_some_and(|x| matches!(x.op, Op::CheckExcMatch | Op::CheckEgMatch));
                    if matching {
                        continue;
                    }
                }
            }
            let handler = self.handler_at(i);
            if let Some(h) = handler {
                if h.depth as usize > stack.len() {
                    continue;
                }
            }
            let index = self.rps.len() as u32;
            self.rps.push(ResumePoint {
                index,
                kind,
                start: self.instrs[i].offset,
                line: self.line_of(i),
                base: stack.clone(),
                handler,
                skip_to: None,
                leave_refusal: None,
                handover_refusal: None,
                covered: 0,
            });
            self.owner[i] = Some(index);
        }
    }

    fn preds(&self) -> Vec<Vec<(usize, Edge, Option<u32>)>> {
        // (pred index, edge, handler depth for exception edges)
        let mut preds: Vec<Vec<(usize, Edge, Option<u32>)>> = vec![Vec::new(); self.instrs.len()];
        for (i, ins) in self.instrs.iter().enumerate() {
            if self.stacks[i].is_none() {
                continue;
            }
            for (edge, t) in successors(self.version, ins) {
                if let Some(t) = self.index_at(t) {
                    preds[t].push((i, edge, None));
                }
            }
            if let Some(e) = exctable::lookup(&self.entries, ins.op_offset()) {
                if let Some(t) = self.index_at(e.target as i64) {
                    preds[t].push((i, Edge::Fall, Some(e.depth)));
                }
            }
        }
        preds
    }

    fn compute_coverage(&mut self) {
        let n = self.instrs.len();
        let preds = self.preds();
        let rp_at: HashMap<u32, u32> = self.rps.iter().map(|r| (r.start, r.index)).collect();
        let is_start = |i: usize, instrs: &[Instr]| rp_at.get(&instrs[i].offset).copied();
        // Ownership: the resume point every path to an instruction comes from.
        let mut own = vec![Own::Unset; n];
        for i in 0..n {
            if let Some(r) = is_start(i, &self.instrs) {
                own[i] = Own::Rp(r);
            }
        }
        let mut changed = true;
        while changed {
            changed = false;
            for i in self.body_start..n {
                if self.stacks[i].is_none() || is_start(i, &self.instrs).is_some() {
                    continue;
                }
                let mut o = Own::Unset;
                for &(p, _, _) in &preds[i] {
                    if p >= self.body_start {
                        o = o.join(own[p]);
                    } else {
                        o = Own::Conflict;
                    }
                }
                if o != own[i] {
                    own[i] = o;
                    changed = true;
                }
            }
        }
        // Intactness: the slots below the owner's start are untouched on every path.
        let depth_of = |r: u32| self.rps[r as usize].base.len();
        let mut intact = vec![true; n];
        let edge_ok =
            |p: usize, edge: Edge, hdepth: Option<u32>, d: usize, intact: &[bool]| -> bool {
                if !intact[p] {
                    return false;
                }
                match hdepth {
                    Some(hd) => hd as usize >= d,
                    None => {
                        let len = self.stacks[p].as_ref().map_or(0, |s| s.len());
                        let c = effect(self.version, &self.instrs[p], edge)
                            .map_or(u32::MAX, |e| e.0) as usize;
                        len >= c && len - c >= d
                    }
                }
            };
        let mut changed = true;
        while changed {
            changed = false;
            for i in self.body_start..n {
                let Own::Rp(r) = own[i] else { continue };
                if is_start(i, &self.instrs).is_some() || !intact[i] {
                    continue;
                }
                let d = depth_of(r);
                let ok = preds[i]
                    .iter()
                    .filter(|(p, _, _)| own[*p] == Own::Rp(r))
                    .all(|&(p, e, h)| edge_ok(p, e, h, d, &intact));
                if !ok {
                    intact[i] = false;
                    changed = true;
                }
            }
        }
        for i in self.body_start..n {
            let Own::Rp(r) = own[i] else { continue };
            self.owner[i] = Some(r);
            let rp = &self.rps[r as usize];
            let d = rp.base.len();
            let ins = &self.instrs[i];
            let Some(stack) = &self.stacks[i] else {
                continue;
            };
            if !intact[i] || !can_raise(ins.op) {
                continue;
            }
            // On error FOR_ITER leaves its iterator in place; everything else is
            // assumed to have consumed its inputs.
            let err_consumed = if ins.op == Op::ForIter {
                0
            } else {
                [Edge::Fall, Edge::Jump]
                    .iter()
                    .filter_map(|e| effect(self.version, ins, *e).map(|x| x.0))
                    .max()
                    .unwrap_or(u32::MAX) as usize
            };
            if stack.len() < err_consumed || stack.len() - err_consumed < d {
                continue;
            }
            if self.handler_at(i) != rp.handler {
                continue;
            }
            self.covered[i] = true;
        }
        for (i, c) in self.covered.iter().enumerate() {
            if *c {
                if let Some(r) = self.owner[i] {
                    self.rps[r as usize].covered += 1;
                }
            }
        }
        self.intact = intact;
    }
}

impl Analysis {
    fn start_index(&self, r: u32) -> usize {
        self.index_at(self.rps[r as usize].start as i64)
            .unwrap_or(0)
    }

    /// The stack after `ins` along `edge`, from the stack before it.
    fn stack_after(&self, i: usize, edge: Edge) -> Option<Vec<SlotKind>> {
        let stack = self.stacks[i].as_ref()?;
        let ins = &self.instrs[i];
        let (c, p) = effect(self.version, ins, edge)?;
        if stack.len() < c as usize {
            return None;
        }
        let mut next = stack[..stack.len() - c as usize].to_vec();
        next.extend(self.produced_kinds(ins, stack, c, p));
        Some(next)
    }

    /// First located line at or after instruction `i` (for ranking skip targets).
    fn line_from(&self, i: usize) -> i64 {
        (i..self.instrs.len())
            .find_map(|k| self.line_of(k))
            .unwrap_or(i64::MAX)
    }

    fn compute_skip_targets(&mut self) {
        let starts: HashMap<u32, u32> = self.rps.iter().map(|r| (r.start, r.index)).collect();
        let mut cands: Vec<Vec<usize>> = vec![Vec::new(); self.rps.len()];
        for p in self.body_start..self.instrs.len() {
            let Some(r) = self.owner[p] else { continue };
            if !self.intact.get(p).copied().unwrap_or(false) {
                continue;
            }
            let base = &self.rps[r as usize].base;
            for (edge, t) in successors(self.version, &self.instrs[p]) {
                let Some(ti) = self.index_at(t) else { continue };
                let t_start = starts.get(&self.instrs[ti].offset).copied();
                if self.owner[ti] == Some(r) && t_start.is_none() {
                    continue; // still inside the statement
                }
                if t_start == Some(r) {
                    continue; // back to itself
                }
                let Some(after) = self.stack_after(p, edge) else {
                    continue;
                };
                if after == *base {
                    cands[r as usize].push(ti);
                } else if after.len() == base.len() + 1
                    && after[..base.len()] == base[..]
                    && self.instrs[ti].op == Op::ForIter
                {
                    // A `for` header falls into its loop: skipping it skips the loop.
                    if let Some((_, exit)) = successors(self.version, &self.instrs[ti])
                        .into_iter()
                        .find(|(e, _)| *e == Edge::Jump)
                    {
                        if let Some(xi) = self.index_at(exit) {
                            cands[r as usize].push(xi);
                        }
                    }
                }
            }
        }
        for r in 0..self.rps.len() {
            if self.rps[r].kind == RpKind::LoopAdvance {
                self.rps[r].skip_to = Some(self.rps[r].start);
                continue;
            }
            let mut c = std::mem::take(&mut cands[r]);
            c.sort_unstable();
            c.dedup();
            // Several ways out (an `if` or `while` test): the branch that comes
            // later in the source is the "condition false" side.
            let best = c
                .iter()
                .copied()
                .max_by_key(|&t| (self.line_from(t), self.instrs[t].offset));
            self.rps[r].skip_to = best.map(|t| self.instrs[t].offset);
        }
    }

    /// Classify the handler code starting at code unit `target`.
    pub fn classify_handler(&self, target: u32) -> HandlerKind {
        use Op::*;
        let Some(i) = self.index_at(target as i64) else {
            return HandlerKind::Other;
        };
        let ops: Vec<&Instr> = self.instrs[i..].iter().take(24).collect();
        let op = |k: usize| ops.get(k).map(|x| x.op);
        match op(0) {
            Some(PushExcInfo) => {
                if op(1) == Some(WithExceptStart) {
                    return HandlerKind::WithCleanup;
                }
                if op(1) == Some(PopTop) {
                    return HandlerKind::Except;
                }
                for ins in ops.iter().skip(1) {
                    match ins.op {
                        CheckExcMatch => return HandlerKind::Except,
                        CheckEgMatch => return HandlerKind::ExceptStar,
                        Copy | BuildList | Swap => continue,
                        o if is_plain_load(o) => continue,
                        _ => return HandlerKind::Other,
                    }
                }
                HandlerKind::Other
            }
            Some(Copy) if ops[0].arg == 3 && op(1) == Some(PopExcept) && op(2) == Some(Reraise) => {
                HandlerKind::ExceptCleanup
            }
            Some(LoadConst)
                if matches!(
                    op(1),
                    Some(StoreFast | StoreName | StoreDeref | StoreGlobal)
                ) && matches!(
                    op(2),
                    Some(DeleteFast | DeleteName | DeleteDeref | DeleteGlobal)
                ) && op(3) == Some(Reraise) =>
            {
                HandlerKind::AsCleanup
            }
            Some(CallIntrinsic1) if ops[0].arg == 3 && op(1) == Some(Reraise) => {
                HandlerKind::GeneratorWrapper
            }
            _ => HandlerKind::Other,
        }
    }

    /// Why returning from resume point `r` (unwinding as the compiler does) is
    /// impossible, if it is.
    pub fn leave_refusal_for(&self, r: usize) -> Option<&'static str> {
        let rp = &self.rps[r];
        if let Some(why) = Self::base_refusal(&rp.base) {
            return Some(why);
        }
        let mut h = rp.handler;
        for _ in 0..64 {
            let hd = h?;
            match self.classify_handler(hd.target) {
                HandlerKind::Other => return Some("leaving would skip a `finally` block"),
                _ => {
                    h = self
                        .index_at(hd.target as i64)
                        .and_then(|i| self.handler_at(i));
                }
            }
        }
        Some("handlers nest too deeply")
    }

    /// Why base slots of these kinds cannot be unwound (or dropped after a
    /// hand-over), if they cannot.
    fn base_refusal(base: &[SlotKind]) -> Option<&'static str> {
        for k in base {
            match k {
                SlotKind::Iter | SlotKind::WithExit | SlotKind::ExcInfo => {}
                SlotKind::AsyncIter => return Some("inside an `async for` loop"),
                SlotKind::AsyncWithExit => return Some("inside an `async with` block"),
                SlotKind::Exception | SlotKind::Lasti => {
                    return Some("inside a `finally` block that is handling an exception")
                }
                SlotKind::Other => return Some("the stack holds values of unknown kind"),
            }
        }
        None
    }

    fn compute_leave(&mut self) {
        for r in 0..self.rps.len() {
            self.rps[r].leave_refusal = self.leave_refusal_for(r);
            self.rps[r].handover_refusal = Self::base_refusal(&self.rps[r].base);
            let _ = self.start_index(r as u32);
        }
    }

    /// The resume point owning the instruction at code unit `unit` (any unit of
    /// the instruction: prefix, opcode or cache).
    pub fn rp_at_unit(&self, unit: u32) -> Option<u32> {
        self.owner[self.instr_at_unit(unit)?]
    }
}

impl Analysis {
    /// Move every position by `units` code units, for code that got a prologue
    /// of that size in front (a continuation).
    pub fn shift(&mut self, units: u32) {
        for i in &mut self.instrs {
            i.offset += units;
        }
        for e in &mut self.entries {
            e.start += units;
            e.end += units;
            e.target += units;
        }
        for r in &mut self.rps {
            r.start += units;
            if let Some(s) = &mut r.skip_to {
                *s += units;
            }
            if let Some(h) = &mut r.handler {
                h.target += units;
            }
        }
        let mut p = vec![Position::default(); units as usize];
        p.append(&mut self.positions);
        self.positions = p;
        self.units += units;
    }

    /// The chain of the program's handlers an exception raised at instruction
    /// `i` meets in this frame, innermost first.
    pub fn handler_chain(&self, i: usize) -> Vec<(Handler, HandlerKind)> {
        let mut out = Vec::new();
        let mut h = self.handler_at(i);
        while let Some(hd) = h {
            if out.len() > 64 {
                break;
            }
            out.push((hd, self.classify_handler(hd.target)));
            h = self
                .index_at(hd.target as i64)
                .and_then(|t| self.handler_at(t));
        }
        out
    }

    /// Instruction index at code unit `unit` exactly (an instruction start).
    pub fn index_of_start(&self, unit: u32) -> Option<usize> {
        self.index_at(unit as i64)
    }
}

/// Locals (not among the first `nargs`, which are bound on entry and never
/// unbound by a restart) that `instrs` read without an unbound check: 3.12+
/// `LOAD_FAST` and 3.13's `LOAD_FAST_LOAD_FAST`/`STORE_FAST_LOAD_FAST`. A skip
/// must not leave one unbound in code that reads it so. 3.11 checks every read.
pub fn unchecked_reads(instrs: &[Instr], ver: Version, nargs: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if ver == Version::V3_11 {
        return out;
    }
    for ins in instrs {
        let reads: &[u32] = match ins.op {
            Op::LoadFast => &[ins.arg],
            Op::LoadFastLoadFast => &[ins.arg >> 4, ins.arg & 15],
            Op::StoreFastLoadFast if ins.arg >> 4 == ins.arg & 15 => &[],
            Op::StoreFastLoadFast => &[ins.arg & 15],
            _ => &[],
        };
        for &l in reads {
            if l >= nargs && !out.contains(&l) {
                out.push(l);
            }
        }
    }
    out.sort_unstable();
    out
}

impl Analysis {
    /// Locals that 3.13's superinstructions (`LOAD_FAST_LOAD_FAST`,
    /// `STORE_FAST_LOAD_FAST`) read without an unbound check: a restart that
    /// jumps past their binding must make sure they are bound (or refuse).
    pub fn unchecked_locals(&self, nargs: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for ins in &self.instrs {
            let reads: &[u32] = match ins.op {
                Op::LoadFastLoadFast => &[ins.arg >> 4, ins.arg & 15],
                // Storing a local and reading it back (a 3.13 comprehension's
                // variable) reads what was just stored: never unbound.
                Op::StoreFastLoadFast if ins.arg >> 4 == ins.arg & 15 => &[],
                Op::StoreFastLoadFast => &[ins.arg & 15],
                _ => &[],
            };
            for &l in reads {
                if l >= nargs && !out.contains(&l) {
                    out.push(l);
                }
            }
        }
        out.sort_unstable();
        out
    }
}

impl Analysis {
    /// For a `try`/`except` dispatch starting at code unit `target`: the
    /// instruction index of the `RERAISE 0` reached when no clause matches
    /// (`None` when a bare `except:` catches everything, or the shape is not
    /// recognised).
    pub fn no_match_reraise(&self, target: u32) -> Option<usize> {
        let mut i = self.index_of_start(target)?;
        if self.instrs[i].op != Op::PushExcInfo {
            return None;
        }
        i += 1;
        for _ in 0..256 {
            let ins = self.instrs.get(i)?;
            match ins.op {
                Op::Reraise if ins.arg == 0 => return Some(i),
                Op::CheckExcMatch => {
                    let j = self.instrs.get(i + 1)?;
                    if !matches!(j.op, Op::PopJumpIfFalse | Op::PopJumpForwardIfFalse) {
                        return None;
                    }
                    let t = instr::jump_target(j, self.version)?;
                    i = self.index_of_start(u32::try_from(t).ok()?)?;
                }
                o if is_plain_load(o) => i += 1,
                _ => return None,
            }
        }
        None
    }

    /// Resume points whose exceptions go to the program's own `except` first:
    /// directly in a `try` body (no slot between the statement and the
    /// `try`), whose clauses are evaluated by the interpreter at no cost; only
    /// when none matches does the handler's no-match `RERAISE` reach the
    /// statement's stub. Returns `(rp, index of that RERAISE)`.
    pub fn except_first(&self) -> Vec<(u32, usize)> {
        let mut out = Vec::new();
        for rp in &self.rps {
            let Some(h) = rp.handler else { continue };
            if rp.covered == 0
                || h.depth != rp.depth()
                || self.classify_handler(h.target) != HandlerKind::Except
            {
                continue;
            }
            if let Some(r) = self.no_match_reraise(h.target) {
                out.push((rp.index, r));
            }
        }
        out
    }
}

impl Analysis {
    /// Locals the instructions of resume point `r` store (`STORE_FAST` and
    /// the 3.13 superinstructions): the bindings a skip of `r` prevents.
    pub fn stored_locals(&self, r: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for (i, ins) in self.instrs.iter().enumerate() {
            if self.owner[i] != Some(r) {
                continue;
            }
            let stores: &[u32] = match ins.op {
                Op::StoreFast => &[ins.arg],
                Op::StoreFastLoadFast => &[ins.arg >> 4],
                Op::StoreFastStoreFast => &[ins.arg >> 4, ins.arg & 15],
                _ => &[],
            };
            for &l in stores {
                if !out.contains(&l) {
                    out.push(l);
                }
            }
        }
        out
    }
}
