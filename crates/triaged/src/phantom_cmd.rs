//! `triaged phantom`: write a labelled set of phantom studies (DICOM or
//! PNG, and labels.csv) for evaluation, demos, tests and benchmarks.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use phantom::{Case, Label, Mix};

use crate::synthetic::{TEST_BASE, VALIDATION_BASE};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Set {
    /// The held-out test set (never seen in training or threshold choice).
    Test,
    /// The validation set thresholds are chosen on.
    Validation,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PhantomArgs {
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of studies (one radiograph each).
    #[arg(long, default_value_t = 100)]
    pub count: u64,
    #[arg(long, value_enum, default_value_t = Set::Test)]
    pub set: Set,
    /// Pixel spacing in mm (0.2-0.4 realistic; larger is faster).
    #[arg(long, default_value_t = 0.3)]
    pub pitch: f64,
    /// Write PNG images instead of DICOM instances.
    #[arg(long)]
    pub png: bool,
    /// Also write each finding's mask as <n>-<label>.png.
    #[arg(long)]
    pub masks: bool,
}

/// The labels.csv header: file, labels, grades, subgroups.
pub fn csv_header() -> String {
    let mut h = String::from("file");
    for l in Label::ALL {
        let _ = write!(h, ",{}", l.name());
    }
    for l in Label::ALL {
        let _ = write!(h, ",{}_grade", l.name());
    }
    h + ",sex,age_band,view,manufacturer"
}

/// The labels.csv row of a case.
pub fn csv_row(file: &str, case: &Case) -> String {
    let mut r = file.to_string();
    for l in Label::ALL {
        let _ = write!(r, ",{}", case.grade(l).is_some() as u8);
    }
    for l in Label::ALL {
        let _ = write!(r, ",{}", case.grade(l).map(|g| g.name()).unwrap_or(""));
    }
    let s = &case.subject;
    let _ = write!(
        r,
        ",{},{},{},{}",
        s.sex.code(),
        s.age_band.name(),
        s.view.code(),
        s.vendor.manufacturer
    );
    r
}

pub fn run(args: &PhantomArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.pitch >= 0.1 && args.pitch <= 5.0,
        "--pitch must lie in 0.1..=5 mm"
    );
    std::fs::create_dir_all(&args.out)?;
    let base = match args.set {
        Set::Test => TEST_BASE,
        Set::Validation => VALIDATION_BASE,
    };
    let mut csv = csv_header() + "\n";
    for i in 0..args.count {
        let case = Case::sample(base + i, &Mix::default());
        let image = case.render(args.pitch, args.masks);
        let file = if args.png {
            let name = format!("{i:05}.png");
            std::fs::write(args.out.join(&name), image.to_png()?)?;
            name
        } else {
            let name = format!("{i:05}.dcm");
            phantom::dicom::instance(&case, &image, 1)?.write_to_file(args.out.join(&name))?;
            name
        };
        if args.masks {
            for l in Label::ALL {
                if let Some(png) = image.mask_png(l) {
                    std::fs::write(args.out.join(format!("{i:05}-{}.png", l.name())), png?)?;
                }
            }
        }
        csv += &csv_row(&file, &case);
        csv.push('\n');
    }
    std::fs::write(args.out.join("labels.csv"), csv)?;
    eprintln!(
        "wrote {} studies and labels.csv to {}",
        args.count,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
