//! Compile-time rules of the attributes: every `fail/*.rs` must fail with the message in its `.stderr`; every
//! `pass/*.rs` must compile. Regenerate with `TRYBUILD=overwrite cargo test --test ui` and review the diff like code.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui-tests/pass/*.rs");
    cases.compile_fail("ui-tests/fail/*.rs");
}
