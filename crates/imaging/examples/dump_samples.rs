//! Write a file's decoded stored samples (frame 0) as little-endian i32, for
//! comparing with another decoder:
//!
//!     cargo run -p triaged-imaging --example dump_samples -- IN.dcm OUT.raw
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let obj = dicom_object::open_file(&args[1]).unwrap_or_else(|e| panic!("{}: {e}", args[1]));
    let frames = imaging::Frames::decode(&obj).unwrap_or_else(|e| panic!("{e}"));
    let bytes: Vec<u8> = frames
        .frame(0)
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&args[2], bytes).unwrap();
}
