//! placeholder (being written)
pub fn run(_: &[String]) -> Result<(), String> {
    Err("fuzz: not written yet".into())
}
