//! placeholder (being written)
pub fn run(_: &[String]) -> Result<(), String> {
    Err("bench: not written yet".into())
}
