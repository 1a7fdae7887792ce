//! Server-side apply with field manager `koperator`, skipped when the live object already
//! carries the hash of what would be applied, so a reconcile with nothing to do writes nothing.

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

/// Stable hash of the JSON of `obj`.
pub fn hash_of(obj: &impl Serialize) -> String {
    koperator_shared::hash::fnv1a64_hex(&serde_json::to_vec(obj).expect("desired objects serialize"))
}

/// Sets `owner` as the controlling owner of `obj`.
pub fn owned_by<K: Resource>(obj: &mut K, owner: OwnerReference) {
    obj.meta_mut().owner_references = Some(vec![owner]);
}

/// Applies `desired` unless `live` already has its hash; returns whether a write happened.
pub async fn apply<K>(api: &Api<K>, mut desired: K, live: Option<&K>) -> kube::Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let hash = hash_of(&desired);
    if live.is_some_and(|l| l.annotations().get(APPLIED_HASH) == Some(&hash)) {
        return Ok(false);
    }
    desired.annotations_mut().insert(APPLIED_HASH.to_string(), hash);
    let name = desired.name_any();
    let mut value = serde_json::to_value(&desired).expect("desired objects serialize");
    value["apiVersion"] = K::api_version(&()).into();
    value["kind"] = K::kind(&()).into();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(value)).await?;
    Ok(true)
}
