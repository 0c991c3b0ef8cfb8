//! The phantom sets: which seeds each set draws its cases from. Sets never
//! share a seed, so a model is never validated or tested on a case it was
//! trained on.

/// Seeds of the phantom sets: training cases are drawn from
/// `seed * TRAINING_STRIDE + i`; validation and test sets are fixed and
/// disjoint from every training run with seed < 1000.
pub const TRAINING_STRIDE: u64 = 1_000_000_000;
pub const VALIDATION_BASE: u64 = 1_000_000_000_000;
pub const TEST_BASE: u64 = 2_000_000_000_000;
/// Demo cases (`triaged demo`) are drawn from seeds above the test set's.
pub const DEMO_BASE: u64 = 3_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Set {
    /// The held-out test set (never seen in training or threshold choice).
    Test,
    /// The validation set thresholds are chosen on.
    Validation,
    /// Training cases (the first training run's seeds).
    Train,
    /// The cases `triaged demo` sends (head CT: its two studies first).
    Demo,
}

impl Set {
    /// The first seed of the set.
    pub fn base(self) -> u64 {
        match self {
            Set::Test => TEST_BASE,
            Set::Validation => VALIDATION_BASE,
            Set::Train => TRAINING_STRIDE,
            Set::Demo => DEMO_BASE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Anatomy {
    /// Frontal chest radiographs (CR/DX), one image a study.
    Chest,
    /// Non-contrast head CT: a folder a study with its routine 5 mm axial
    /// series (`s2-*.dcm`) and, in some, a thin one (`s3-*.dcm`);
    /// labels.csv a row per study.
    HeadCt,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sets_never_share_a_seed() {
        // Training runs use seeds below 1000, each at most a stride of
        // cases; head CT seeds are offset within each set by less than the
        // gap to the next set.
        let last_training = 999 * TRAINING_STRIDE + TRAINING_STRIDE;
        assert!(last_training <= VALIDATION_BASE);
        let offset = crate::head::HEAD_CT_SEEDS;
        for (a, b) in [(VALIDATION_BASE, TEST_BASE), (TEST_BASE, DEMO_BASE)] {
            assert!(a + 2 * offset <= b, "{a} and {b}");
        }
    }
}
