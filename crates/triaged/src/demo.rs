//! `triaged demo`: send a handful of phantom chest studies (some normal,
//! some with urgent findings) and two head CT studies (a haemorrhage, a
//! normal head with a calcified pineal gland) by C-STORE to a running triaged, or start
//! one, so a newcomer sees the whole path within a minute.

use std::process::ExitCode;

use dicom_dictionary_std::tags;
use dimse::scu::{self, Outgoing, Peer, ScuSettings};
use phantom::{Case, Grade, Label, Mix};

use daemon::config::Config;

use lab::sets::DEMO_BASE;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Number of studies to send (they cycle through normal and abnormal
    /// cases).
    #[arg(long, default_value_t = 6)]
    pub studies: u64,
    /// Send to this AE title instead of the configured dicom.ae_title.
    #[arg(long)]
    pub ae_title: Option<String>,
    /// Send to HOST:PORT instead of the configured dicom.listen (a PACS
    /// router in front of triaged, say).
    #[arg(long, value_name = "HOST:PORT")]
    pub to: Option<String>,
    /// Do not start a daemon when none answers; fail instead.
    #[arg(long)]
    pub no_start: bool,
    /// Also send two head CT studies: one with a haemorrhage, one normal
    /// with a calcified pineal gland (`--head-ct false`: chest only).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub head_ct: bool,
}

fn outgoing(obj: dicom_object::FileDicomObject<dicom_object::InMemDicomObject>) -> Outgoing {
    let text = |t| attrs::text(&obj, t).unwrap_or_default();
    let (class, sop) = (text(tags::SOP_CLASS_UID), text(tags::SOP_INSTANCE_UID));
    Outgoing {
        sop_class_uid: class,
        sop_instance_uid: sop,
        dataset: obj.into_inner(),
    }
}

/// The demo's cases, in order: what a triage list should sort.
fn findings(i: u64) -> Vec<(Label, Grade)> {
    match i % 6 {
        0 | 1 => vec![],
        2 => vec![(Label::Pneumothorax, Grade::Severe)],
        3 => vec![
            (Label::Effusion, Grade::Moderate),
            (Label::Cardiomegaly, Grade::Moderate),
        ],
        4 => vec![(Label::Nodule, Grade::Severe)],
        _ => vec![(Label::Consolidation, Grade::Moderate)],
    }
}

pub async fn run(config: Config, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let (host, port) = match &args.to {
        Some(to) => {
            let (h, p) = to
                .rsplit_once(':')
                .ok_or_else(|| anyhow::anyhow!("--to: '{to}' is not HOST:PORT"))?;
            let port: u16 = p
                .parse()
                .map_err(|_| anyhow::anyhow!("--to: '{p}' is not a port"))?;
            (h.trim_matches(['[', ']']).to_string(), port)
        }
        None => {
            let mut a = config.dicom.listen;
            if a.ip().is_unspecified() {
                a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            (a.ip().to_string(), a.port())
        }
    };
    let target = format!("{host}:{port}");
    let peer = Peer {
        ae_title: args
            .ae_title
            .clone()
            .unwrap_or_else(|| config.dicom.ae_title.clone()),
        host,
        port,
        tls: None,
    };
    let settings = ScuSettings {
        calling_ae_title: "TRIAGED-DEMO".into(),
        ..config.scu_settings()
    };
    let mut started = None;
    if scu::echo(&settings, &peer).await.is_err() {
        anyhow::ensure!(
            !args.no_start,
            "no triaged answers C-ECHO as {}@{target} (start one with `triaged serve`)",
            peer.ae_title
        );
        println!(
            "no triaged answers at {}@{target}: starting one here",
            peer.ae_title
        );
        crate::logging::init(&config.log)?;
        started = Some(daemon::serve::Daemon::start(config.clone()).await?);
    }

    println!(
        "rendering {} phantom chest studies and {} head CT studies ...",
        args.studies,
        if args.head_ct { 2 } else { 0 }
    );
    let mut items = Vec::new();
    // Per study: (Study Instance UID, what it is, its items).
    let mut studies: Vec<(String, String, std::ops::Range<usize>)> = Vec::new();
    for i in 0..args.studies {
        let case = Case::sample(DEMO_BASE + i, &Mix::Exactly(findings(i)));
        let image = case.render(0.3, false);
        let obj = phantom::dicom::instance(&case, &image, 1)?;
        let what: Vec<String> = case
            .findings
            .iter()
            .map(|f| format!("{} ({})", f.label().name(), f.grade().name()))
            .collect();
        let what = format!(
            "{} {}: {}",
            case.subject.vendor.modality,
            case.subject.view.code(),
            if what.is_empty() {
                "normal".to_string()
            } else {
                what.join(", ")
            }
        );
        let study = attrs::text(&obj, tags::STUDY_INSTANCE_UID).unwrap_or_default();
        studies.push((study, what, items.len()..items.len() + 1));
        items.push(outgoing(obj));
    }
    if args.head_ct {
        for case in lab::head::demo_cases() {
            let first = items.len();
            let mut study = String::new();
            for series in std::iter::once(case.clone()).chain(case.thin_series()) {
                for index in 0..series.slice_positions().len() {
                    let slice = series.render_slice(index);
                    let obj = phantom::dicom::head_ct_instance(&series, &slice, index as u32 + 1)?;
                    study = attrs::text(&obj, tags::STUDY_INSTANCE_UID).unwrap_or_default();
                    items.push(outgoing(obj));
                }
            }
            let mut what: Vec<String> = case
                .bleeds
                .iter()
                .map(|b| format!("{} haemorrhage ({})", b.kind.name(), b.size.name()))
                .collect();
            if what.is_empty() {
                what.push("normal".into());
            }
            what.extend(case.mimics.iter().map(|m| format!("mimic: {}", m.name())));
            let what = format!(
                "CT head, {} slices: {}",
                items.len() - first,
                what.join(", ")
            );
            studies.push((study, what, first..items.len()));
        }
    }
    let results = scu::store(&settings, &peer, &items).await?;
    let mut failures = 0;
    for (study, what, range) in &studies {
        let failed: Vec<String> = results[range.clone()]
            .iter()
            .filter_map(|r| match r.status {
                Some(s) if s.is_ok() => None,
                Some(s) => Some(s.to_string()),
                None => Some("no presentation context".into()),
            })
            .collect();
        let status = if failed.is_empty() {
            "stored".to_string()
        } else {
            failures += 1;
            format!("FAILED ({})", failed[0])
        };
        println!("  study {study} {what} - {status}");
    }
    println!(
        "sent {} studies to {}@{target}; `triaged studies list` shows them",
        studies.len(),
        peer.ae_title
    );
    if config.http.enabled {
        let token = if config.http.users.is_empty() {
            format!(
                "the admin token is in {}",
                config
                    .storage
                    .dir
                    .join(daemon::serve::ADMIN_TOKEN_FILE)
                    .display()
            )
        } else {
            "sign in with your [[http.users]] token".to_string()
        };
        println!("worklist: http://{}/ ({token})", config.http.listen);
    }
    if let Some(d) = started {
        println!("the daemon keeps running here; Ctrl-C stops it");
        daemon::serve::until_signal(d).await?;
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
