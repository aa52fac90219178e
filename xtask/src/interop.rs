//! placeholder (being written)
pub fn test() -> Result<(), String> {
    Err("interop: not written yet".into())
}
