//! Choosing a volume size from a CSI `CapacityRange`.
//!
//! The backend offers sizes in whole steps (for example 100 GiB) between a minimum and a maximum.
//! [`pick_capacity`] rounds the requested size up to a step, and only then checks `limit_bytes`,
//! so the returned size never exceeds the caller's limit (a bug in the original Go driver).

use crate::proto::CapacityRange;

/// Why no size satisfies a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    /// A field was negative.
    #[error("capacity range has a negative value (required {required}, limit {limit})")]
    Negative {
        /// `required_bytes` as sent.
        required: i64,
        /// `limit_bytes` as sent.
        limit: i64,
    },
    /// `required_bytes` exceeds `limit_bytes`.
    #[error("required_bytes {required} exceeds limit_bytes {limit}")]
    RequiredAboveLimit {
        /// `required_bytes` as sent.
        required: i64,
        /// `limit_bytes` as sent.
        limit: i64,
    },
    /// The smallest offered size that satisfies the request is above the limit or the maximum.
    #[error(
        "no size in steps of {step} bytes between {min} and {max} satisfies required {required} \
         and limit {limit} (smallest fitting size: {candidate})"
    )]
    NoFit {
        /// Requested minimum (0 = unspecified).
        required: i64,
        /// Requested maximum (0 = unspecified).
        limit: i64,
        /// The backend's size step, in bytes ([`CapacityPolicy::step_bytes`]).
        step: i64,
        /// The backend's smallest size, in bytes.
        min: i64,
        /// The backend's largest size, in bytes.
        max: i64,
        /// The size rounding produced.
        candidate: i64,
    },
    /// The policy itself is inconsistent.
    #[error("invalid capacity policy: {0}")]
    BadPolicy(&'static str),
}

impl From<CapacityError> for tonic::Status {
    fn from(e: CapacityError) -> Self {
        match e {
            CapacityError::Negative { .. } => tonic::Status::invalid_argument(e.to_string()),
            CapacityError::BadPolicy(_) => tonic::Status::internal(e.to_string()),
            _ => tonic::Status::out_of_range(e.to_string()),
        }
    }
}

/// The sizes a backend offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityPolicy {
    /// Sizes are whole multiples of this many bytes (> 0).
    pub step_bytes: i64,
    /// Smallest size offered.
    pub min_bytes: i64,
    /// Largest size offered.
    pub max_bytes: i64,
    /// Size used when the request gives no `required_bytes` (clipped to `limit_bytes`).
    pub default_bytes: i64,
}

/// Picks the smallest offered size that satisfies `range`; see the module docs.
pub fn pick_capacity(range: Option<&CapacityRange>, policy: &CapacityPolicy) -> Result<i64, CapacityError> {
    if policy.step_bytes <= 0 {
        return Err(CapacityError::BadPolicy("step_bytes must be positive"));
    }
    if policy.min_bytes > policy.max_bytes {
        return Err(CapacityError::BadPolicy("min_bytes exceeds max_bytes"));
    }
    let (required, limit) = range.map_or((0, 0), |r| (r.required_bytes, r.limit_bytes));
    if required < 0 || limit < 0 {
        return Err(CapacityError::Negative { required, limit });
    }
    if limit > 0 && required > limit {
        return Err(CapacityError::RequiredAboveLimit { required, limit });
    }
    let wanted = match (required, limit) {
        (0, 0) => policy.default_bytes,
        (0, l) => policy.default_bytes.min(l),
        (r, _) => r,
    }
    .max(policy.min_bytes);
    let no_fit = |candidate| CapacityError::NoFit {
        required,
        limit,
        step: policy.step_bytes,
        min: policy.min_bytes,
        max: policy.max_bytes,
        candidate,
    };
    let candidate = round_up(wanted, policy.step_bytes).ok_or_else(|| no_fit(i64::MAX))?;
    if candidate > policy.max_bytes || (limit > 0 && candidate > limit) {
        return Err(no_fit(candidate));
    }
    Ok(candidate)
}

/// Rounds `value` up to a multiple of `step`; `None` on overflow.
pub fn round_up(value: i64, step: i64) -> Option<i64> {
    if step <= 0 || value < 0 {
        return None;
    }
    let rem = value % step;
    if rem == 0 {
        Some(value)
    } else {
        value.checked_add(step - rem)
    }
}

/// One gibibyte (2^30 bytes).
pub const GIB: i64 = 1 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    const P: CapacityPolicy = CapacityPolicy {
        step_bytes: 100 * GIB,
        min_bytes: 100 * GIB,
        max_bytes: 4000 * GIB,
        default_bytes: 100 * GIB,
    };

    fn r(required: i64, limit: i64) -> Option<CapacityRange> {
        Some(CapacityRange {
            required_bytes: required,
            limit_bytes: limit,
        })
    }

    #[test]
    fn table() {
        let cases: Vec<(&str, Option<CapacityRange>, Result<i64, ()>)> = vec![
            ("no range", None, Ok(100 * GIB)),
            ("zeros", r(0, 0), Ok(100 * GIB)),
            ("10Gi -> 100Gi", r(10 * GIB, 0), Ok(100 * GIB)),
            ("exactly 100Gi", r(100 * GIB, 0), Ok(100 * GIB)),
            ("101Gi -> 200Gi", r(101 * GIB, 0), Ok(200 * GIB)),
            ("1Ti -> 1100Gi", r(1024 * GIB, 0), Ok(1100 * GIB)),
            ("one byte", r(1, 0), Ok(100 * GIB)),
            ("max", r(4000 * GIB, 0), Ok(4000 * GIB)),
            ("above max", r(4000 * GIB + 1, 0), Err(())),
            ("limit honoured after rounding", r(150 * GIB, 199 * GIB), Err(())),
            ("limit fits", r(150 * GIB, 200 * GIB), Ok(200 * GIB)),
            ("exact size", r(300 * GIB, 300 * GIB), Ok(300 * GIB)),
            ("limit below min", r(0, 10 * GIB), Err(())),
            ("limit only", r(0, 500 * GIB), Ok(100 * GIB)),
            ("required above limit", r(300 * GIB, 200 * GIB), Err(())),
            ("negative", r(-1, 0), Err(())),
            ("overflow", r(i64::MAX, 0), Err(())),
        ];
        for (name, range, want) in cases {
            let got = pick_capacity(range.as_ref(), &P).map_err(|_| ());
            assert_eq!(got, want, "case {name}");
        }
    }

    #[test]
    fn error_codes() {
        let code =
            |range: Option<CapacityRange>| tonic::Status::from(pick_capacity(range.as_ref(), &P).unwrap_err()).code();
        assert_eq!(code(r(-5, 0)), tonic::Code::InvalidArgument);
        assert_eq!(code(r(150 * GIB, 199 * GIB)), tonic::Code::OutOfRange);
        assert_eq!(code(r(3, 2)), tonic::Code::OutOfRange);
        let bad = CapacityPolicy { step_bytes: 0, ..P };
        assert!(matches!(pick_capacity(None, &bad), Err(CapacityError::BadPolicy(_))));
    }

    #[test]
    fn round_up_table() {
        assert_eq!(round_up(0, 10), Some(0));
        assert_eq!(round_up(1, 10), Some(10));
        assert_eq!(round_up(10, 10), Some(10));
        assert_eq!(round_up(11, 10), Some(20));
        assert_eq!(round_up(i64::MAX, 10), None);
        assert_eq!(round_up(5, 0), None);
    }
}
