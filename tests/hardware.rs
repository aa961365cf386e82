mod common;

fn main() {
    common::main(&[]);
}
