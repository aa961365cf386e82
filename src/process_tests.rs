// Forking from libtest's multi-threaded process is refused: that refusal is what is
// tested here. The ladder itself is tested in tests/supervisor.rs (single-threaded).
use super::*;

#[test]
fn fork_is_refused_in_a_multithreaded_process() {
    let t = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(300)));
    let e = fork_child(|| 0).unwrap_err();
    assert!(
        std::error::Error::source(&e)
            .unwrap()
            .to_string()
            .contains("threads"),
        "{e}"
    );
    t.join().unwrap();
}
