//! placeholder (being written)
pub fn run(_: &[String]) -> Result<(), String> {
    Err("fixtures: not written yet".into())
}
pub fn check() -> Result<(), String> {
    Err("fixtures: not written yet".into())
}
