//! Table E.1-1 of DICOM PS3.15 (Application Level Confidentiality Profile
//! Attributes): which attributes identify, and what the Basic Profile and
//! the Modified Dates Option do with each.

use std::collections::HashMap;
use std::sync::LazyLock;

use dicom_core::Tag;

/// The table as generated from the standard (see its header for the
/// edition).
pub const TABLE: &str = include_str!("../profile/table-e1-1.tsv");

/// An action code of Table E.1-1, as the table writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// D: a non-zero length dummy value consistent with the VR.
    D,
    /// Z: a zero length value (or a dummy).
    Z,
    /// X: removed.
    X,
    /// K: kept (a sequence: its items cleaned).
    K,
    /// C: cleaned (in an option's column: dates shifted).
    C,
    /// U: a UID replaced by another, consistently within the set.
    U,
    /// Z/D: Z unless D is needed for the IOD (Type 2 or Type 1).
    ZD,
    /// X/Z: X unless Z is needed (Type 3 or Type 2).
    XZ,
    /// X/D: X unless D is needed (Type 3 or Type 1).
    XD,
    /// X/Z/D: X unless Z or D is needed.
    XZD,
    /// X/Z/U*: X unless Z or a replacement is needed; a sequence's UIDs
    /// replaced.
    XZU,
}

/// What happens to one attribute. The table's compound actions depend on
/// the attribute's Type in the object's IOD, which varies: triaged takes
/// the alternative that keeps every IOD conformant (an empty value where
/// Type 2 would do, a dummy where Type 1 may be needed), so the object it
/// writes still validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    Remove,
    Empty,
    Dummy,
    NewUid,
    /// Kept; a sequence's items are treated attribute by attribute.
    Keep,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "D" => Action::D,
            "Z" => Action::Z,
            "X" => Action::X,
            "K" => Action::K,
            "C" => Action::C,
            "U" => Action::U,
            "Z/D" => Action::ZD,
            "X/Z" => Action::XZ,
            "X/D" => Action::XD,
            "X/Z/D" => Action::XZD,
            "X/Z/U*" => Action::XZU,
            _ => return None,
        })
    }

    /// As the table writes it.
    pub fn code(self) -> &'static str {
        match self {
            Action::D => "D",
            Action::Z => "Z",
            Action::X => "X",
            Action::K => "K",
            Action::C => "C",
            Action::U => "U",
            Action::ZD => "Z/D",
            Action::XZ => "X/Z",
            Action::XD => "X/D",
            Action::XZD => "X/Z/D",
            Action::XZU => "X/Z/U*",
        }
    }

    /// What triaged does for this action (see [`Treatment`]).
    pub fn treatment(self) -> Treatment {
        match self {
            Action::X => Treatment::Remove,
            Action::Z | Action::XZ => Treatment::Empty,
            Action::D | Action::ZD | Action::XD | Action::XZD => Treatment::Dummy,
            Action::U | Action::XZU => Treatment::NewUid,
            Action::K | Action::C => Treatment::Keep,
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// As the table writes it: `0010,0010`, `60xx,3000`, `private`.
    pub tag: String,
    pub name: String,
    pub basic: Action,
    /// The Retain Longitudinal Temporal Information with Modified Dates
    /// Option's action, where it has one.
    pub modified_dates: Option<Action>,
}

/// A tag with hex digits that match anything (`x` in the table).
#[derive(Debug, Clone, Copy)]
struct Pattern {
    mask: u32,
    value: u32,
}

impl Pattern {
    fn parse(s: &str) -> Option<Pattern> {
        let digits: Vec<char> = s.chars().filter(|c| *c != ',').collect();
        if digits.len() != 8 || s.len() != 9 || s.as_bytes()[4] != b',' {
            return None;
        }
        let (mut mask, mut value) = (0u32, 0u32);
        for c in digits {
            mask <<= 4;
            value <<= 4;
            if c != 'x' {
                mask |= 0xF;
                value |= c.to_digit(16)?;
            }
        }
        Some(Pattern { mask, value })
    }

    fn matches(self, tag: Tag) -> bool {
        let t = ((tag.group() as u32) << 16) | tag.element() as u32;
        t & self.mask == self.value
    }
}

/// The whole table, ready for lookups.
#[derive(Debug)]
pub struct Profile {
    rules: Vec<Rule>,
    exact: HashMap<Tag, usize>,
    repeating: Vec<(Pattern, usize)>,
    private: usize,
}

impl Profile {
    fn parse(text: &str) -> Result<Profile, String> {
        let mut rules = Vec::new();
        let (mut exact, mut repeating, mut private) = (HashMap::new(), Vec::new(), None);
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let bad = |what: &str| format!("line {}: {what}: {line}", n + 1);
            let f: Vec<&str> = line.split('\t').collect();
            let [tag, basic, dates, name] = f[..] else {
                return Err(bad("not four columns"));
            };
            let basic = Action::parse(basic).ok_or_else(|| bad("unknown action"))?;
            let modified_dates = match dates {
                "" => None,
                d => Some(Action::parse(d).ok_or_else(|| bad("unknown option action"))?),
            };
            let i = rules.len();
            if tag == "private" {
                private = Some(i);
            } else if tag.contains('x') {
                repeating.push((Pattern::parse(tag).ok_or_else(|| bad("bad tag"))?, i));
            } else {
                let p = Pattern::parse(tag).ok_or_else(|| bad("bad tag"))?;
                exact.insert(Tag((p.value >> 16) as u16, p.value as u16), i);
            }
            rules.push(Rule {
                tag: tag.to_string(),
                name: name.to_string(),
                basic,
                modified_dates,
            });
        }
        Ok(Profile {
            rules,
            exact,
            repeating,
            private: private.ok_or("no row for private attributes")?,
        })
    }

    /// The rule for `tag`, if the table lists it.
    pub fn rule(&self, tag: Tag) -> Option<&Rule> {
        if tag.group() % 2 == 1 {
            return Some(&self.rules[self.private]);
        }
        if let Some(&i) = self.exact.get(&tag) {
            return Some(&self.rules[i]);
        }
        // Repeating groups (curves, overlays) are even groups 50xx, 60xx.
        self.repeating
            .iter()
            .find(|(p, _)| p.matches(tag))
            .map(|&(_, i)| &self.rules[i])
    }

    /// Every row, in the table's order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

static STANDARD: LazyLock<Profile> =
    LazyLock::new(|| Profile::parse(TABLE).expect("profile/table-e1-1.tsv is well formed"));

/// Table E.1-1.
pub fn standard() -> &'static Profile {
    &STANDARD
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_dictionary_std::tags;

    #[test]
    fn the_table_is_read_whole() {
        let p = standard();
        let rows = TABLE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        assert_eq!(p.rules().len(), rows);
        assert!(rows > 600, "{rows} rows");
        let code = |t| p.rule(t).map(|r| r.basic.code());
        assert_eq!(code(tags::PATIENT_NAME), Some("Z"));
        assert_eq!(code(tags::PATIENT_ID), Some("Z/D"));
        assert_eq!(code(tags::STUDY_INSTANCE_UID), Some("U"));
        assert_eq!(code(tags::INSTITUTION_ADDRESS), Some("X"));
        assert_eq!(code(tags::REFERENCED_IMAGE_SEQUENCE), Some("X/Z/U*"));
        assert_eq!(code(tags::PIXEL_DATA), None);
        assert_eq!(code(tags::MODALITY), None);
        // Overlays in any of the 16 even groups, curves, private groups.
        assert_eq!(code(Tag(0x6002, 0x3000)), Some("X"));
        assert_eq!(code(Tag(0x6002, 0x0010)), None);
        assert_eq!(code(Tag(0x5004, 0x0020)), Some("X"));
        assert_eq!(
            p.rule(Tag(0x0009, 0x1001)).map(|r| r.tag.as_str()),
            Some("private")
        );
        let study_date = p.rule(tags::STUDY_DATE).unwrap();
        assert_eq!(study_date.modified_dates, Some(Action::C));
    }

    #[test]
    fn compound_actions_keep_objects_conformant() {
        assert_eq!(Action::XZ.treatment(), Treatment::Empty);
        assert_eq!(Action::XZD.treatment(), Treatment::Dummy);
        assert_eq!(Action::XZU.treatment(), Treatment::NewUid);
        assert_eq!(Action::X.treatment(), Treatment::Remove);
    }

    #[test]
    fn a_malformed_table_is_refused() {
        assert!(Profile::parse("0010,0010\tQ\t\tName\nprivate\tX\t\tP\n").is_err());
        assert!(Profile::parse("0010,0010\tZ\t\tName\n").is_err());
        assert!(Profile::parse("0010;0010\tZ\t\tName\nprivate\tX\t\tP\n").is_err());
    }
}
