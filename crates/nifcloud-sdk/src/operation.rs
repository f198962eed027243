//! The contract between one generated operation input and the client that sends it.

use crate::wire::Params;
use crate::xml::FromXml;

/// One API operation: its action name, how its input is written as form parameters and what its reply parses
/// into. Every generated `<Op>Request` type implements it; [`Client::send`](crate::Client) is generic over it.
pub trait Operation: Send + Sync {
    /// The `Action` parameter, e.g. `DescribeVolumes`.
    const ACTION: &'static str;

    /// What the reply parses into: the generated `<Op>Result` type.
    type Output: FromXml + Send + 'static;

    /// Writes every set member of the input as form parameters, except `Action`, `Version` and the signature
    /// fields, which the client adds.
    fn serialize(&self, out: &mut Params);

    /// Checks that every member the model marks required is set (nested structures and list elements too).
    fn validate(&self) -> Result<(), MissingParameter>;

    /// The input as a fresh parameter list (a convenience over [`Operation::serialize`]).
    fn to_params(&self) -> Params {
        let mut out = Params::new();
        self.serialize(&mut out);
        out
    }
}

/// A required member of an operation's input is not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action}: required parameter {parameter} is not set")]
pub struct MissingParameter {
    /// The operation, e.g. `CreateVolume`.
    pub action: &'static str,
    /// The wire name of the missing parameter, e.g. `Size` or `Listeners.member.1.LoadBalancerPort`.
    pub parameter: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_parameter_message_names_action_and_parameter() {
        let e = MissingParameter {
            action: "CreateVolume",
            parameter: "Size".into(),
        };
        assert_eq!(e.to_string(), "CreateVolume: required parameter Size is not set");
    }
}
