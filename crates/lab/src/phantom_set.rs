//! `triaged phantom`: write a labelled set of phantom studies (DICOM or
//! PNG, and labels.csv) for evaluation, demos, tests and benchmarks.

use std::fmt::Write as _;
use std::path::PathBuf;

use phantom::head::{Bleed, HeadCase, HeadMix, Mimic};
use phantom::{Case, Label, Mix};

use crate::head::{demo_cases, head_seed, slice_targets, study_targets, HEAD_LABELS};
use crate::{ensure, Anatomy, LabError, Set};

#[derive(Debug, Clone, clap::Args)]
pub struct PhantomArgs {
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = Anatomy::Chest)]
    pub anatomy: Anatomy,
    /// Head CT: the image side in pixels (512 as scanners write; smaller
    /// is faster).
    #[arg(long, default_value_t = 512)]
    pub matrix: usize,
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

pub fn run(args: &PhantomArgs) -> Result<(), LabError> {
    ensure!(
        args.pitch >= 0.1 && args.pitch <= 5.0,
        "--pitch must lie in 0.1..=5 mm"
    );
    std::fs::create_dir_all(&args.out)?;
    let base = args.set.base();
    if args.anatomy == Anatomy::HeadCt {
        return head_ct(args, base);
    }
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
    Ok(())
}

/// labels.csv of the head CT phantom: one row a study. Label columns are
/// the head CT model's labels (`intracranial_haemorrhage`, one per type),
/// grades the bleeds' sizes; `read_thickness` is the slice thickness of the
/// series the daemon reads (the thinnest).
pub fn head_csv_header() -> String {
    let mut h = String::from("folder,study_instance_uid");
    for l in HEAD_LABELS {
        let _ = write!(h, ",{}", key(l));
    }
    for l in HEAD_LABELS {
        let _ = write!(h, ",{}_grade", key(l));
    }
    h += ",midline_shift_mm";
    for m in Mimic::ALL {
        let _ = write!(h, ",{}", m.name());
    }
    h + ",manufacturer,kernel,slice_thickness,slices,thin_thickness,thin_slices,read_thickness"
}

/// A label as a CSV column: lower case, `_` for spaces.
fn key(label: &str) -> String {
    label.to_ascii_lowercase().replace(' ', "_")
}

pub fn head_csv_row(folder: &str, case: &HeadCase) -> String {
    let id = phantom::dicom::Identity::from_seed(case.seed, case.age);
    let mut r = format!("{folder},{}", id.study_uid);
    for t in study_targets(case) {
        let _ = write!(r, ",{}", t as u8);
    }
    let name = |s: Option<phantom::head::Size>| s.map(|s| s.name()).unwrap_or("");
    let _ = write!(r, ",{}", name(case.largest()));
    for b in Bleed::ALL {
        let _ = write!(r, ",{}", name(case.size(b)));
    }
    let _ = write!(r, ",{:.1}", case.shift.abs());
    for m in Mimic::ALL {
        let _ = write!(r, ",{}", case.mimics.contains(&m) as u8);
    }
    let _ = write!(
        r,
        ",{},{},{},{}",
        case.vendor.manufacturer,
        case.vendor.kernel,
        case.thickness,
        case.slice_positions().len()
    );
    match case.thin_series() {
        Some(t) => {
            let _ = write!(r, ",{},{}", t.thickness, t.slice_positions().len());
        }
        None => r.push_str(",,"),
    }
    let _ = write!(r, ",{}", case.thin.unwrap_or(case.thickness));
    r
}

/// slices.csv of the head CT phantom: one row a slice, for slice-level
/// evaluation (a type is present where its mask reaches the slice).
fn head_slice_header() -> String {
    let mut h = String::from("file");
    for l in HEAD_LABELS {
        let _ = write!(h, ",{}", key(l));
    }
    h + ",manufacturer,slice_thickness"
}

fn head_slice_row(file: &str, series: &HeadCase, slice: &phantom::head::CtSlice) -> String {
    let mut r = file.to_string();
    for t in slice_targets(slice) {
        let _ = write!(r, ",{}", t as u8);
    }
    let _ = write!(r, ",{},{}", series.vendor.manufacturer, series.thickness);
    r
}

fn head_ct(args: &PhantomArgs, base: u64) -> Result<(), LabError> {
    ensure!(
        (64..=1024).contains(&args.matrix),
        "--matrix must lie in 64..=1024"
    );
    ensure!(!args.png, "--png: head CT is written as DICOM only");
    let mix = HeadMix {
        matrix: args.matrix,
        ..HeadMix::default()
    };
    let mut csv = head_csv_header() + "\n";
    let mut slices_csv = head_slice_header() + "\n";
    // The demo set starts with the two studies `triaged demo` sends.
    let demo = demo_cases();
    for i in 0..args.count {
        let case = match demo.get(i as usize).filter(|_| args.set == Set::Demo) {
            Some(c) => HeadCase {
                matrix: args.matrix,
                ..c.clone()
            },
            None => HeadCase::sample(head_seed(base, i), &mix),
        };
        let folder = format!("{i:05}");
        let dir = args.out.join(&folder);
        std::fs::create_dir_all(&dir)?;
        for series in std::iter::once(case.clone()).chain(case.thin_series()) {
            let s = series.series_number();
            for index in 0..series.slice_positions().len() {
                let slice = series.render_slice(index);
                let number = index as u32 + 1;
                let file = format!("s{s}-{number:04}.dcm");
                phantom::dicom::head_ct_instance(&series, &slice, number)?
                    .write_to_file(dir.join(&file))?;
                slices_csv += &head_slice_row(&format!("{folder}/{file}"), &series, &slice);
                slices_csv.push('\n');
                if args.masks {
                    for (b, mask) in &slice.masks {
                        if mask.iter().any(|&m| m) {
                            let grey: Vec<u8> =
                                mask.iter().map(|&m| if m { 255 } else { 0 }).collect();
                            std::fs::write(
                                dir.join(format!("s{s}-{number:04}-{}.png", b.name())),
                                phantom::encode_png(&grey, series.matrix, series.matrix)?,
                            )?;
                        }
                    }
                }
            }
        }
        csv += &head_csv_row(&folder, &case);
        csv.push('\n');
    }
    std::fs::write(args.out.join("labels.csv"), csv)?;
    std::fs::write(args.out.join("slices.csv"), slices_csv)?;
    eprintln!(
        "wrote {} head CT studies, labels.csv and slices.csv to {}",
        args.count,
        args.out.display()
    );
    Ok(())
}
