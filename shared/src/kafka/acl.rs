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
