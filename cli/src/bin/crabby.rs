//! The `crabby` command with crabby's own Blocks: `crabby run|validate|list|schema`.
//! See the `crabby_cli` crate's documentation.

fn main() {
    std::process::exit(crabby_cli::main(crabby_cli::Registry::stock()));
}
