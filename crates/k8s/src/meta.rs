//! A Kubernetes object's namespace, name and UID as plain strings (empty when unset), for every
//! kind alike.

/// [`kube::Resource`]'s metadata fields as `&str`.
pub trait MetaStr {
    /// Namespace, empty when unset.
    fn namespace_str(&self) -> &str;
    /// Name, empty when unset.
    fn name_str(&self) -> &str;
    /// UID, empty when unset.
    fn uid_str(&self) -> &str;
}

impl<K: kube::Resource> MetaStr for K {
    fn namespace_str(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or_default()
    }
    fn name_str(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }
    fn uid_str(&self) -> &str {
        self.meta().uid.as_deref().unwrap_or_default()
    }
}
