//! Render a few cases to PNG for looking at: `cargo run --release -p
//! triaged-phantom --example phantom_png -- OUT_DIR [COUNT] [PITCH]`.

use phantom::{Case, Label, Mix};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = std::path::PathBuf::from(args.get(1).map(String::as_str).unwrap_or("phantom-png"));
    let count: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let pitch: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0.5);
    std::fs::create_dir_all(&out).expect("create the output folder");
    for seed in 0..count {
        let case = Case::sample(seed, &Mix::default());
        let t = std::time::Instant::now();
        let image = case.render(pitch, true);
        let found: Vec<String> = case
            .findings
            .iter()
            .map(|f| format!("{}-{}", f.label().name(), f.grade().name()))
            .collect();
        println!(
            "{seed}: {} {} {} {:?} ctr {:.2} [{}] {} ms",
            case.subject.vendor.modality,
            case.subject.view.code(),
            case.subject.sex.code(),
            case.subject.age_band,
            case.cardiothoracic_ratio(),
            found.join(" "),
            t.elapsed().as_millis()
        );
        std::fs::write(out.join(format!("{seed}.png")), image.to_png().unwrap()).unwrap();
        for l in Label::ALL {
            if let Some(png) = image.mask_png(l) {
                std::fs::write(out.join(format!("{seed}-{}.png", l.name())), png.unwrap()).unwrap();
            }
        }
    }
}
