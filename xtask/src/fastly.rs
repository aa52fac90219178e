//! placeholder (being written)
pub fn test() -> Result<(), String> {
    Err("fastly: not written yet".into())
}
pub fn serve(_: &[String]) -> Result<(), String> {
    Err("serve: not written yet".into())
}
