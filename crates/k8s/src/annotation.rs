//! The pod network request annotation `k8s.v1.cni.cncf.io/networks` of a Pod: the one parser is
//! [`model::request`]; [`from_pod`] hands it a Pod's metadata.

use model::request::{from_annotations, AnnotationError, NetworkSelection};

/// The resolved selections of a pod: empty when it has no networks annotation. The namespace
/// is the pod's (`default` when unset).
pub fn from_pod(pod: &k8s_openapi::api::core::v1::Pod) -> Result<Vec<NetworkSelection>, AnnotationError> {
    from_annotations(pod.metadata.namespace.as_deref(), pod.metadata.annotations.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::request::NETWORKS_ANNOTATION;

    #[test]
    fn from_a_pod() {
        let mut pod = k8s_openapi::api::core::v1::Pod::default();
        assert_eq!(from_pod(&pod).unwrap(), vec![]);
        pod.metadata.namespace = Some("team".into());
        pod.metadata.annotations = Some([(NETWORKS_ANNOTATION.to_string(), "blue@x".to_string())].into());
        let s = from_pod(&pod).unwrap();
        assert_eq!((s.len(), s[0].namespace.as_str(), s[0].name.as_str(), s[0].interface.as_str()), (1, "team", "blue", "x"));
        pod.metadata.annotations = Some([(NETWORKS_ANNOTATION.to_string(), "a@x,b@x".to_string())].into());
        assert!(matches!(from_pod(&pod), Err(AnnotationError::DuplicateInterface { .. })));
    }
}
