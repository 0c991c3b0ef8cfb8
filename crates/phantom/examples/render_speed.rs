fn main() {
    let pitch: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.37);
    let t = std::time::Instant::now();
    for seed in 0..32 {
        let c = phantom::Case::sample(seed, &phantom::Mix::default());
        let _ = c.render(pitch, false);
    }
    println!("32 renders at {pitch} mm: {:?}", t.elapsed());
}
