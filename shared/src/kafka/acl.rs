//! Kafka ACLs: bindings and filters with the protocol's codes.

use std::fmt;

/// Kind of resource an ACL protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Unknown = 0,
    Any = 1,
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
}

/// How the resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternType {
    Unknown = 0,
    /// Filters only: any pattern type.
    Any = 1,
    /// Filters only: literal, wildcard or prefixed patterns that match the name.
    Match = 2,
    Literal = 3,
    Prefixed = 4,
}

/// What the ACL allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AclOperation {
    Unknown = 0,
    Any = 1,
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    Unknown = 0,
    Any = 1,
    Deny = 2,
    Allow = 3,
}

macro_rules! from_code {
    ($t:ident, $($v:ident),+) => {
        impl $t {
            fn from_code(code: i8) -> Self {
                $(if code == $t::$v as i8 { return $t::$v; })+
                $t::Unknown
            }
            /// The variant whose `Debug` text is `name` (what [`AclBinding`]'s `Display` writes).
            fn from_name(name: &str) -> Option<Self> {
                $(if name == stringify!($v) { return Some($t::$v); })+
                None
            }
        }
    };
}
from_code!(ResourceType, Any, Topic, Group, Cluster, TransactionalId);
from_code!(PatternType, Any, Match, Literal, Prefixed);
from_code!(
    AclOperation,
    Any,
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite
);
from_code!(Permission, Any, Deny, Allow);

/// One ACL: `principal` from `host` may (or may not) do `operation` on a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: Permission,
}

impl AclBinding {
    /// An ALLOW binding for `principal` from any host.
    pub fn allow(
        principal: &str,
        resource_type: ResourceType,
        resource_name: &str,
        pattern_type: PatternType,
        operation: AclOperation,
    ) -> Self {
        AclBinding {
            resource_type,
            resource_name: resource_name.into(),
            pattern_type,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission: Permission::Allow,
        }
    }

    pub(crate) fn from_codes(
        resource_type: i8,
        resource_name: String,
        pattern_type: i8,
        principal: String,
        host: String,
        operation: i8,
        permission: i8,
    ) -> Self {
        AclBinding {
            resource_type: ResourceType::from_code(resource_type),
            resource_name,
            pattern_type: PatternType::from_code(pattern_type),
            principal,
            host,
            operation: AclOperation::from_code(operation),
            permission: Permission::from_code(permission),
        }
    }

    /// A filter matching exactly this binding.
    pub fn to_filter(&self) -> AclFilter {
        AclFilter {
            resource_type: self.resource_type,
            resource_name: Some(self.resource_name.clone()),
            pattern_type: self.pattern_type,
            principal: Some(self.principal.clone()),
            host: Some(self.host.clone()),
            operation: self.operation,
            permission: self.permission,
        }
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {} {:?} on {:?}:{:?}:{} from {}",
            self.permission,
            self.principal,
            self.operation,
            self.resource_type,
            self.pattern_type,
            self.resource_name,
            self.host
        )
    }
}

/// A string that is not an [`AclBinding`] as its `Display` writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an ACL binding (\"<Allow|Deny> <principal> <operation> on <type>:<pattern>:<name> from <host>\"): {0:?}")]
pub struct AclParseError(pub String);

impl AclParseError {
    /// Stable category for logs and status reasons.
    pub fn category(&self) -> &'static str {
        "AclUnparsable"
    }
}

impl std::str::FromStr for AclBinding {
    type Err = AclParseError;

    /// Reads back what `Display` wrote (the form `KafkaUser.status.acls` records).
    fn from_str(s: &str) -> Result<Self, AclParseError> {
        let bad = || AclParseError(s.to_string());
        let (permission, rest) = s.split_once(' ').ok_or_else(bad)?;
        let (rest, host) = rest.rsplit_once(" from ").ok_or_else(bad)?;
        let (rest, resource) = rest.rsplit_once(" on ").ok_or_else(bad)?;
        let (principal, operation) = rest.rsplit_once(' ').ok_or_else(bad)?;
        let mut parts = resource.splitn(3, ':');
        let (resource_type, pattern_type, resource_name) =
            (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
        Ok(AclBinding {
            resource_type: ResourceType::from_name(resource_type).ok_or_else(bad)?,
            resource_name: resource_name.to_string(),
            pattern_type: PatternType::from_name(pattern_type).ok_or_else(bad)?,
            principal: principal.to_string(),
            host: host.to_string(),
            operation: AclOperation::from_name(operation).ok_or_else(bad)?,
            permission: Permission::from_name(permission).ok_or_else(bad)?,
        })
    }
}

/// Which ACLs to describe or delete; `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: Permission,
}

impl AclFilter {
    /// Every ACL of `principal`.
    pub fn principal(principal: &str) -> Self {
        AclFilter { principal: Some(principal.into()), ..AclFilter::any() }
    }

    /// Every ACL.
    pub fn any() -> Self {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: Permission::Any,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_back() {
        let acls = [
            AclBinding::allow("User:alice", ResourceType::Topic, "orders", PatternType::Literal, AclOperation::Read),
            AclBinding::allow("User:CN=bob", ResourceType::Group, "*", PatternType::Literal, AclOperation::Read),
            AclBinding::allow("User:carol", ResourceType::Topic, "logs-", PatternType::Prefixed, AclOperation::Create),
            AclBinding {
                permission: Permission::Deny,
                host: "10.0.0.1".into(),
                ..AclBinding::allow(
                    "User:a b",
                    ResourceType::Cluster,
                    "kafka-cluster",
                    PatternType::Literal,
                    AclOperation::IdempotentWrite,
                )
            },
        ];
        for a in acls {
            assert_eq!(a.to_string().parse::<AclBinding>(), Ok(a.clone()), "{a}");
        }
    }

    #[test]
    fn other_text_is_refused() {
        for s in [
            "",
            "Allow User:alice Read",
            "Allow User:alice Read on Topic:orders from *",
            "Maybe User:a Read on Topic:Literal:t from *",
        ] {
            assert!(s.parse::<AclBinding>().is_err(), "{s}");
        }
    }
}
