//! The ACLs a KafkaUser's `topicGrants` stand for (Koperator's set):
//! - `read`: Describe and Read on the topic, and Read on every consumer group (`*`), which a
//!   consumer needs to join a group;
//! - `write`: Describe, Write and Create on the topic.
//!
//! Kafka creates ACLs with literal or prefixed patterns only; `match` and `any` (filter types
//! in Kafka) are created as literal, so `topicName: "*"` with them means every topic.

use std::collections::BTreeSet;

use super::acl::{AclBinding, AclOperation, PatternType, ResourceType};
use crate::api::kafkauser::{AccessType, PatternType as GrantPattern, UserTopicGrant};

/// Every ACL the grants need for `principal` (`User:<name>`), without duplicates.
pub fn acls_for(principal: &str, grants: &[UserTopicGrant]) -> BTreeSet<AclBinding> {
    let mut out = BTreeSet::new();
    for g in grants {
        let pattern = match g.pattern_type.unwrap_or_default() {
            GrantPattern::Prefixed => PatternType::Prefixed,
            GrantPattern::Literal | GrantPattern::Match | GrantPattern::Any => PatternType::Literal,
        };
        let topic = |op| AclBinding::allow(principal, ResourceType::Topic, &g.topic_name, pattern, op);
        out.insert(topic(AclOperation::Describe));
        match g.access_type {
            AccessType::Read => {
                out.insert(topic(AclOperation::Read));
                out.insert(AclBinding::allow(
                    principal,
                    ResourceType::Group,
                    "*",
                    PatternType::Literal,
                    AclOperation::Read,
                ));
            }
            AccessType::Write => {
                out.insert(topic(AclOperation::Write));
                out.insert(topic(AclOperation::Create));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(topic: &str, access: AccessType, pattern: Option<GrantPattern>) -> UserTopicGrant {
        UserTopicGrant { topic_name: topic.into(), access_type: access, pattern_type: pattern }
    }

    #[test]
    fn read_and_write_grants() {
        let acls = acls_for(
            "User:alice",
            &[grant("orders", AccessType::Read, None), grant("logs-", AccessType::Write, Some(GrantPattern::Prefixed))],
        );
        let topic = |name: &str, pattern, op| AclBinding::allow("User:alice", ResourceType::Topic, name, pattern, op);
        let want = BTreeSet::from([
            topic("orders", PatternType::Literal, AclOperation::Describe),
            topic("orders", PatternType::Literal, AclOperation::Read),
            AclBinding::allow("User:alice", ResourceType::Group, "*", PatternType::Literal, AclOperation::Read),
            topic("logs-", PatternType::Prefixed, AclOperation::Describe),
            topic("logs-", PatternType::Prefixed, AclOperation::Write),
            topic("logs-", PatternType::Prefixed, AclOperation::Create),
        ]);
        assert_eq!(acls, want);
    }

    #[test]
    fn duplicates_collapse_and_filter_patterns_become_literal() {
        let acls = acls_for(
            "User:bob",
            &[
                grant("*", AccessType::Read, Some(GrantPattern::Any)),
                grant("*", AccessType::Read, Some(GrantPattern::Match)),
            ],
        );
        assert_eq!(acls.len(), 3);
        assert!(acls.iter().all(|a| a.pattern_type == PatternType::Literal));
    }
}
