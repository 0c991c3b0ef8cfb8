//! `triaged conformance`: the conformance statement's tables, from the
//! code's own lists (docs/conformance.md embeds this output; a test checks
//! that it still matches).

use std::fmt::Write as _;
use std::process::ExitCode;

/// The generated part of docs/conformance.md, between its markers.
pub fn tables() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### SOP classes accepted as SCP\n");
    let _ = writeln!(out, "| SOP class | UID |\n|---|---|");
    let _ = writeln!(out, "| Verification | `{}` |", dimse::sop::VERIFICATION);
    for (uid, name) in dimse::sop::storage_classes() {
        let _ = writeln!(out, "| {name} | `{uid}` |");
    }
    let _ = writeln!(out, "\n### Transfer syntaxes accepted as SCP\n");
    let _ = writeln!(out, "Any of these, for every SOP class above; the SCP chooses the first of the requestor's proposals that it supports.\n");
    let _ = writeln!(out, "| transfer syntax | UID |\n|---|---|");
    for (uid, name) in dimse::sop::accepted_transfer_syntaxes() {
        let _ = writeln!(out, "| {name} | `{uid}` |");
    }
    let _ = writeln!(out, "\n### SOP classes proposed as SCU\n");
    let _ = writeln!(out, "| SOP class | UID | sent when |\n|---|---|---|");
    let _ = writeln!(
        out,
        "| Verification | `{}` | `triaged echo`, the console's echo button |",
        dimse::sop::VERIFICATION
    );
    let _ = writeln!(
        out,
        "| Comprehensive 3D SR Storage | `{}` | every analysis with a report (TID 1500) |",
        report::SrClass::Comprehensive3d.uid()
    );
    let _ = writeln!(
        out,
        "| Comprehensive SR Storage | `{}` | instead, when the peer accepts no context for Comprehensive 3D SR |",
        report::SrClass::Comprehensive.uid()
    );
    let _ = writeln!(
        out,
        "| Secondary Capture Image Storage | `{}` | one heatmap per flagged finding |",
        report::heatmap::SECONDARY_CAPTURE
    );
    let _ = writeln!(out, "\nEach is proposed in its own presentation context with these transfer syntaxes, in this order:\n");
    let _ = writeln!(out, "| transfer syntax | UID |\n|---|---|");
    for uid in dimse::scu::PROPOSED_TRANSFER_SYNTAXES {
        let name = dimse::sop::accepted_transfer_syntaxes()
            .into_iter()
            .find(|(u, _)| *u == uid)
            .map(|(_, n)| n)
            .unwrap_or("");
        let _ = writeln!(out, "| {name} | `{uid}` |");
    }
    out
}

pub fn run() -> anyhow::Result<ExitCode> {
    print!("{}", tables());
    Ok(ExitCode::SUCCESS)
}
