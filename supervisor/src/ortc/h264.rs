//! H264 `profile-level-id` handling (RFC 6184 §8.1), with the semantics of libwebrtc's
//! `h264_profile_level_id` (which mediasoup uses through the `h264-profile-level-id` package):
//! profiles are compared, levels negotiated.

use super::types::{ParameterValue, Parameters};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Profile {
    ConstrainedBaseline,
    Baseline,
    Main,
    ConstrainedHigh,
    High,
    PredictiveHigh444,
}

/// H264 level: ten times the level number (`31` = 3.1), except level 1b which is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Level(u8);

impl Level {
    const L1_B: Level = Level(0);
    const L1: Level = Level(10);
    const L3_1: Level = Level(31);

    /// Level order, with 1b between 1 and 1.1.
    fn is_less_than(self, other: Level) -> bool {
        if self == Level::L1_B {
            return other != Level::L1 && other != Level::L1_B;
        }
        if other == Level::L1_B {
            // libwebrtc; the JS port mediasoup uses has `!=` here (1b would be below
            // everything but 1).
            return self == Level::L1;
        }
        self.0 < other.0
    }

    fn min(self, other: Level) -> Level {
        if self.is_less_than(other) {
            self
        } else {
            other
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ProfileLevelId {
    pub(crate) profile: Profile,
    pub(crate) level: Level,
}

/// When the parameter is absent: constrained baseline 3.1, libwebrtc's (deliberately
/// non-RFC) default.
const DEFAULT: ProfileLevelId = ProfileLevelId {
    profile: Profile::ConstrainedBaseline,
    level: Level::L3_1,
};

/// `(profile_idc, profile_iop pattern, profile)`; in the pattern 'x' is either bit.
const PROFILE_PATTERNS: [(u8, &str, Profile); 9] = [
    (0x42, "x1xx0000", Profile::ConstrainedBaseline),
    (0x4d, "1xxx0000", Profile::ConstrainedBaseline),
    (0x58, "11xx0000", Profile::ConstrainedBaseline),
    (0x42, "x0xx0000", Profile::Baseline),
    (0x58, "10xx0000", Profile::Baseline),
    (0x4d, "0x0x0000", Profile::Main),
    (0x64, "00000000", Profile::High),
    (0x64, "00001100", Profile::ConstrainedHigh),
    (0xf4, "00000000", Profile::PredictiveHigh444),
];

fn pattern_matches(pattern: &str, value: u8) -> bool {
    pattern.bytes().enumerate().all(|(i, c)| {
        let bit = (value >> (7 - i)) & 1;
        match c {
            b'1' => bit == 1,
            b'0' => bit == 0,
            _ => true,
        }
    })
}

/// Parses three hex bytes ("42e01f"). None when not a recognised profile/level.
pub(crate) fn parse_profile_level_id(s: &str) -> Option<ProfileLevelId> {
    const CONSTRAINT_SET3_FLAG: u8 = 0x10;
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let n = u32::from_str_radix(s, 16).ok()?;
    if n == 0 {
        return None;
    }
    let [_, profile_idc, profile_iop, level_idc] = n.to_be_bytes();
    let level = match level_idc {
        11 if profile_iop & CONSTRAINT_SET3_FLAG != 0 => Level::L1_B,
        10 | 11 | 12 | 13 | 20 | 21 | 22 | 30 | 31 | 32 | 40 | 41 | 42 | 50 | 51 | 52 => {
            Level(level_idc)
        }
        _ => return None,
    };
    PROFILE_PATTERNS
        .iter()
        .find(|(idc, pattern, _)| *idc == profile_idc && pattern_matches(pattern, profile_iop))
        .map(|&(_, _, profile)| ProfileLevelId { profile, level })
}

/// Canonical three-hex-byte form; None for level 1b on a profile that does not have it.
pub(crate) fn profile_level_id_to_string(id: ProfileLevelId) -> Option<String> {
    if id.level == Level::L1_B {
        return match id.profile {
            Profile::ConstrainedBaseline => Some("42f00b".to_owned()),
            Profile::Baseline => Some("42100b".to_owned()),
            Profile::Main => Some("4d100b".to_owned()),
            _ => None,
        };
    }
    let prefix = match id.profile {
        Profile::ConstrainedBaseline => "42e0",
        Profile::Baseline => "4200",
        Profile::Main => "4d00",
        Profile::ConstrainedHigh => "640c",
        Profile::High => "6400",
        Profile::PredictiveHigh444 => "f400",
    };
    Some(format!("{prefix}{:02x}", id.level.0))
}

/// The `profile-level-id` parameter as text, if present and non-empty. A number (what an SDP
/// parser makes of e.g. "420032") is read back in decimal.
fn raw_profile_level_id(params: &Parameters) -> Option<String> {
    let s = params.get("profile-level-id")?.to_string();
    (!s.is_empty()).then_some(s)
}

/// The profile-level-id of codec parameters: the default when absent, None when present but
/// invalid.
pub(crate) fn parse_sdp_profile_level_id(params: &Parameters) -> Option<ProfileLevelId> {
    match raw_profile_level_id(params) {
        Some(s) => parse_profile_level_id(&s),
        None => Some(DEFAULT),
    }
}

/// Same H264 profile (levels are not compared); false if either is invalid.
pub(crate) fn is_same_profile(a: &Parameters, b: &Parameters) -> bool {
    match (parse_sdp_profile_level_id(a), parse_sdp_profile_level_id(b)) {
        (Some(a), Some(b)) => a.profile == b.profile,
        _ => false,
    }
}

fn is_level_asymmetry_allowed(params: &Parameters) -> bool {
    match params.get("level-asymmetry-allowed") {
        Some(ParameterValue::Number(n)) => n.as_u64() == Some(1),
        Some(ParameterValue::String(s)) => s == "1",
        None => false,
    }
}

/// Why no answer profile-level-id could be generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AnswerError {
    InvalidLocal,
    InvalidRemote,
    ProfileMismatch,
}

/// The profile-level-id to answer with, `local` being what we support and `remote` what was
/// offered (same profile required). With level asymmetry allowed on both sides the local level
/// is kept, otherwise the lower of the two. `Ok(None)` when neither side has the parameter.
pub(crate) fn generate_profile_level_id_for_answer(
    local: &Parameters,
    remote: &Parameters,
) -> Result<Option<String>, AnswerError> {
    if raw_profile_level_id(local).is_none() && raw_profile_level_id(remote).is_none() {
        return Ok(None);
    }
    let l = parse_sdp_profile_level_id(local).ok_or(AnswerError::InvalidLocal)?;
    let r = parse_sdp_profile_level_id(remote).ok_or(AnswerError::InvalidRemote)?;
    if l.profile != r.profile {
        return Err(AnswerError::ProfileMismatch);
    }
    let asymmetry = is_level_asymmetry_allowed(local) && is_level_asymmetry_allowed(remote);
    let level = if asymmetry {
        l.level
    } else {
        l.level.min(r.level)
    };
    Ok(profile_level_id_to_string(ProfileLevelId {
        profile: l.profile,
        level,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, ParameterValue)]) -> Parameters {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn parses_common_profiles() {
        let p = |s| parse_profile_level_id(s).map(|p| (p.profile, p.level.0));
        assert_eq!(p("42e01f"), Some((Profile::ConstrainedBaseline, 31)));
        assert_eq!(p("42001f"), Some((Profile::Baseline, 31)));
        assert_eq!(p("4d0032"), Some((Profile::Main, 50)));
        assert_eq!(p("640c1f"), Some((Profile::ConstrainedHigh, 31)));
        assert_eq!(p("640032"), Some((Profile::High, 50)));
        assert_eq!(p("f4001f"), Some((Profile::PredictiveHigh444, 31)));
        assert_eq!(p("42f00b"), Some((Profile::ConstrainedBaseline, 0)));
        assert_eq!(p("42e00b"), Some((Profile::ConstrainedBaseline, 11)));
        for bad in [
            "", "42e01", "42e01f0", "000000", "42e0zz", "42e0ff", "ff001f",
        ] {
            assert_eq!(parse_profile_level_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn string_round_trip() {
        for s in [
            "42e01f", "42001f", "4d0032", "640c1f", "640032", "42f00b", "4d100b",
        ] {
            let parsed = parse_profile_level_id(s).map(profile_level_id_to_string);
            assert_eq!(parsed, Some(Some(s.to_owned())));
        }
    }

    #[test]
    fn level_order_handles_1b() {
        assert!(Level::L1.is_less_than(Level::L1_B));
        assert!(Level::L1_B.is_less_than(Level(11)));
        assert!(!Level(11).is_less_than(Level::L1_B));
        assert!(!Level::L1_B.is_less_than(Level::L1));
        assert_eq!(Level::L3_1.min(Level::L1_B), Level::L1_B);
        assert_eq!(Level(31).min(Level(50)), Level(31));
        assert_eq!(Level(50).min(Level(31)), Level(31));
    }

    #[test]
    fn answer_levels() {
        let cb52 = params(&[("profile-level-id", "42e034".into())]);
        let cb31_asym = params(&[
            ("profile-level-id", "42e01f".into()),
            ("level-asymmetry-allowed", 1u32.into()),
        ]);
        let cb52_asym = params(&[
            ("profile-level-id", "42e034".into()),
            ("level-asymmetry-allowed", "1".into()),
        ]);
        // No asymmetry on one side: the lower level.
        assert_eq!(
            generate_profile_level_id_for_answer(&cb52, &cb31_asym),
            Ok(Some("42e01f".to_owned()))
        );
        // Asymmetry on both sides: the local level.
        assert_eq!(
            generate_profile_level_id_for_answer(&cb52_asym, &cb31_asym),
            Ok(Some("42e034".to_owned()))
        );
        // Neither side has the parameter.
        assert_eq!(
            generate_profile_level_id_for_answer(&Parameters::new(), &Parameters::new()),
            Ok(None)
        );
        let main = params(&[("profile-level-id", "4d0032".into())]);
        assert_eq!(
            generate_profile_level_id_for_answer(&main, &cb52),
            Err(AnswerError::ProfileMismatch)
        );
        assert!(!is_same_profile(&main, &cb52));
        // Absent = constrained baseline.
        assert!(is_same_profile(&Parameters::new(), &cb52));
    }
}
