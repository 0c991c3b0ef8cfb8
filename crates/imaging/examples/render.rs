//! Render a DICOM file's first frame as PNG, optionally with a synthetic
//! heatmap (a bright spot in the upper right) to check the overlay:
//!
//!     cargo run -p triaged-imaging --example render -- IN.dcm OUT.png [--heat]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: render IN.dcm OUT.png [--heat]");
        std::process::exit(2);
    }
    let obj = dicom_object::open_file(&args[1]).unwrap_or_else(|e| panic!("{}: {e}", args[1]));
    let frames = imaging::Frames::decode(&obj).unwrap_or_else(|e| panic!("{e}"));
    let mut img = frames.display(0).unwrap_or_else(|e| panic!("{e}"));
    if args.iter().any(|a| a == "--heat") {
        let n = 16;
        let heat: Vec<f32> = (0..n * n)
            .map(|i| {
                let (y, x) = ((i / n) as f32, (i % n) as f32);
                (-((x - 11.0).powi(2) + (y - 5.0).powi(2)) / 8.0).exp()
            })
            .collect();
        img = imaging::overlay(&img, &heat, n, n, 0.6).unwrap();
    }
    std::fs::write(&args[2], img.to_png()).unwrap();
}
