//! Print the instrumented code of one fixture (debugging aid):
//! `cargo run -p resurrect-bytecode --example debug_fixture -- 311 9`
use resurrect_bytecode::analysis::Analysis;
use resurrect_bytecode::emit::{self, StubNames};
use resurrect_bytecode::{exctable, instr, Version};

fn hex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ver = match args[1].as_str() {
        "311" => Version::V3_11,
        "312" => Version::V3_12,
        _ => Version::V3_13,
    };
    let k: usize = args[2].parse().unwrap();
    let path = format!(
        "{}/tests/fixtures/code-{}.txt",
        env!("CARGO_MANIFEST_DIR"),
        args[1]
    );
    let text = std::fs::read_to_string(path).unwrap();
    let p: Vec<&str> = text.lines().nth(k).unwrap().split(' ').collect();
    let (first, nargs, code, exc, lines) = (
        p[0].parse().unwrap(),
        p[1].parse().unwrap(),
        hex(p[2]),
        hex(p[3]),
        hex(p[4]),
    );
    let a = Analysis::new(ver, &code, &exc, &lines, first).unwrap();
    let names = StubNames {
        dispatch: 1000,
        unwind: 1001,
        value: 1002,
        late: 1003,
        first_rp_const: 2000,
        generator_exit: Some(5),
    };
    let r = emit::instrument(&a, &code, &lines, first, names, 999, nargs).unwrap();
    for i in instr::decode(&r.code, ver).unwrap() {
        println!("{:5} {:?} {}", i.offset, i.op, i.arg);
    }
    for e in exctable::decode(&r.exceptiontable).unwrap() {
        println!("{e:?}");
    }
    match Analysis::new(ver, &r.code, &r.exceptiontable, &r.linetable, first) {
        Ok(_) => println!("ok"),
        Err(e) => println!("{e}"),
    }
}
