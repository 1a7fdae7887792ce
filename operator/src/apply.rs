//! Server-side apply with field manager `koperator`. Every desired object carries the hash of
//! itself in an annotation, so the planner can tell an up-to-date live object without a diff
//! and a reconcile with nothing to do writes nothing.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "koperator";
/// Annotation with the hash of the last applied desired state.
pub const APPLIED_HASH: &str = "koperator.banzaicloud.io/applied-hash";

/// Annotation with the UID of the KafkaCluster an object without owner references (a PVC,
/// which outlives its cluster) was created for: what makes it ours rather than a same-named
/// object someone else made.
pub const OWNER_UID: &str = "koperator.banzaicloud.io/owner-uid";

/// Stable hash of the JSON of `obj`.
pub fn hash_of(obj: &impl Serialize) -> String {
    koperator_shared::hash::fnv1a64_hex(&serde_json::to_vec(obj).expect("desired objects serialize"))
}

/// Sets `owner` as the controlling owner of `obj`.
pub fn owned_by<K: Resource>(obj: &mut K, owner: OwnerReference) {
    obj.meta_mut().owner_references = Some(vec![owner]);
}

/// `desired` with its hash annotation, or `None` when `live` already carries that hash.
pub fn unless_applied<K: Resource + Serialize>(mut desired: K, live: Option<&K>) -> Option<K> {
    let hash = hash_of(&desired);
    if live.is_some_and(|l| l.annotations().get(APPLIED_HASH) == Some(&hash)) {
        return None;
    }
    desired.annotations_mut().insert(APPLIED_HASH.to_string(), hash);
    Some(desired)
}

/// Whether `live` carries the hash of `desired` (as rendered, before [`unless_applied`]).
pub fn is_applied<K: Resource + Serialize>(desired: &K, live: &K) -> bool {
    live.annotations().get(APPLIED_HASH) == Some(&hash_of(desired))
}

/// Whether `live`'s controlling owner is the object with `owner_uid`.
pub fn owned_by_uid<K: Resource>(live: &K, owner_uid: &str) -> bool {
    live.meta().owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == owner_uid)
}

/// Whether `live` was made by the operator for the object with `owner_uid`: its controlling
/// owner is that object, or (objects without owner references, PVCs) its [`OWNER_UID`]
/// annotation names it. Anything else with a name the operator wants is never applied over,
/// restarted or deleted.
pub fn is_ours<K: Resource>(live: &K, owner_uid: &str) -> bool {
    owned_by_uid(live, owner_uid)
        || (live.meta().owner_references.as_ref().is_none_or(Vec::is_empty)
            && live.annotations().get(OWNER_UID).is_some_and(|u| u == owner_uid))
}

/// Server-side applies a custom resource of another project (`desired` carries its
/// apiVersion and kind).
pub async fn apply_dynamic(
    api: &Api<kube::api::DynamicObject>,
    desired: &kube::api::DynamicObject,
) -> kube::Result<()> {
    let value = serde_json::to_value(desired).expect("desired objects serialize");
    api.patch(&desired.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(value)).await?;
    Ok(())
}

/// Server-side applies `desired` (forcing our field manager's ownership of its fields).
pub async fn apply<K>(api: &Api<K>, desired: &K) -> kube::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = desired.name_any();
    let mut value = serde_json::to_value(desired).expect("desired objects serialize");
    value["apiVersion"] = K::api_version(&()).into();
    value["kind"] = K::kind(&()).into();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(value)).await?;
    Ok(())
}
