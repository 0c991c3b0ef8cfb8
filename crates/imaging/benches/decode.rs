//! Decode + `xrv` preprocessing time per file (median of runs), printed as
//! `name<TAB>ms`. bench/imaging.sh runs it beside the Python path.
//!
//!     cargo bench -p triaged-imaging --bench decode -- FILE...
use std::time::Instant;

use imaging::{Frames, InputSpec};

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    for path in std::env::args().skip(1).filter(|a| !a.starts_with("--")) {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            let obj = dicom_object::open_file(&path).expect("open");
            let frames = Frames::decode(&obj).expect("decode");
            let t = InputSpec::Xrv {
                size: 224,
                resize: imaging::Resize::Area,
            }
            .apply(&frames, 0)
            .expect("xrv");
            std::hint::black_box(t);
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let name = std::path::Path::new(&path)
            .file_name()
            .unwrap()
            .to_string_lossy();
        println!("{name}\t{:.2}", times[times.len() / 2]);
    }
}
