//! [`ObsPoint`]: where in the Apply flow an observation is made. It is the
//! `obs_point` field of every event and label of every per-point metric.

use std::fmt;

use crate::refusal::InvalidInput;

/// Longest accepted observation point name.
const MAX_OBS_POINT_LEN: usize = 64;

/// Where in the Apply flow an observation is made.
///
/// Two points are built in; callers may add their own with
/// [`ObsPoint::new`]. Names are `'static` so that a point costs nothing to
/// pass around and the set of metric labels stays bounded by the code.
///
/// ```
/// use heat_observer::ObsPoint;
///
/// assert_eq!(ObsPoint::PUBLISH_PLAN_POST.as_str(), "publish_plan_post");
/// let custom = ObsPoint::new("execute_post")?;
/// assert_eq!(custom.to_string(), "execute_post");
/// assert!(ObsPoint::new("two words").is_err());
/// # Ok::<(), heat_observer::InvalidInput>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObsPoint(&'static str);

impl ObsPoint {
    /// The late observer, after `publish_plan`: watches up to the max wait.
    pub const PUBLISH_PLAN_POST: ObsPoint = ObsPoint("publish_plan_post");
    /// The early check at `create_apply_plan`: one look, no wait.
    pub const CREATE_APPLY_PLAN: ObsPoint = ObsPoint("create_apply_plan");
    /// The points every observer knows from the start (their metrics exist
    /// at 0 before the first event).
    pub const BUILT_IN: [ObsPoint; 2] = [Self::CREATE_APPLY_PLAN, Self::PUBLISH_PLAN_POST];

    /// A caller-defined point.
    ///
    /// # Errors
    /// [`InvalidInput::BadObsPoint`] unless `name` is 1 to
    /// 64 characters of ASCII letters, digits, `_`, `.`
    /// or `-` (it appears in keys, stream fields and metric labels).
    pub fn new(name: &'static str) -> Result<ObsPoint, InvalidInput> {
        let ok = !name.is_empty()
            && name.len() <= MAX_OBS_POINT_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(ObsPoint(name))
        } else {
            Err(InvalidInput::BadObsPoint)
        }
    }

    /// The name written to events and metric labels.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for ObsPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests;
