//! The process's glibc malloc arenas, capped before any thread starts.
//!
//! glibc gives a multi-threaded process up to eight malloc arenas per core
//! and keeps what each thread freed for that thread's next allocation. The
//! daemon's image and tensor buffers are allocated on tokio's threads and
//! freed on rayon's (and the reverse), so most of that retained memory sits
//! in arenas no thread reuses soon: with two arenas the peak after
//! radiographs is about a third lower at the same speed (docs/performance.md,
//! Memory). The cap is the daemon's own default, not the deployment's:
//! `MALLOC_ARENA_MAX` in the environment, when set, is glibc's to apply and
//! is left alone.

#![allow(unsafe_code)]

/// Arenas when `MALLOC_ARENA_MAX` is not set.
pub const DEFAULT_ARENAS: i32 = 2;

/// What [`cap_arenas`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arenas {
    /// Capped at this many.
    Capped(i32),
    /// `MALLOC_ARENA_MAX` is set: glibc applied it at start.
    FromEnvironment,
    /// Not glibc, or glibc refused the setting: its default stands.
    Default,
}

/// Cap the arenas at [`DEFAULT_ARENAS`] unless `MALLOC_ARENA_MAX` is set.
/// Call it first thing in `main`, before any thread exists: arenas already
/// made are kept.
pub fn cap_arenas() -> Arenas {
    match arenas_to_set(std::env::var_os("MALLOC_ARENA_MAX").as_deref()) {
        Some(n) => set_arena_max(n),
        None => Arenas::FromEnvironment,
    }
}

/// The cap to set, given the environment's `MALLOC_ARENA_MAX`: none when
/// it is set (glibc read it at start), whatever its value.
fn arenas_to_set(environment: Option<&std::ffi::OsStr>) -> Option<i32> {
    match environment {
        Some(_) => None,
        None => Some(DEFAULT_ARENAS),
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(n: i32) -> Arenas {
    // SAFETY: mallopt takes two integers and only sets a limit glibc reads
    // when a thread next needs an arena; it is documented as callable at
    // any time, and it touches no memory of ours. (glibc answers 1 for any
    // parameter it does not reject, so the answer proves little; the effect
    // is measured by bench/e2e.sh's peak RSS, docs/performance.md.)
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, n) } == 1 {
        Arenas::Capped(n)
    } else {
        Arenas::Default
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_: i32) -> Arenas {
    Arenas::Default
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_has_the_last_word() {
        assert_eq!(arenas_to_set(None), Some(DEFAULT_ARENAS));
        assert_eq!(arenas_to_set(Some("8".as_ref())), None);
        // Even a value glibc ignores: the operator asked for its default.
        assert_eq!(arenas_to_set(Some("".as_ref())), None);
    }
}
