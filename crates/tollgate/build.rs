// Which test dependencies this machine has, as cfgs that un-ignore the tests needing them.
fn main() {
    tollgate_testenv::emit();
}
