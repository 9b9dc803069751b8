//! `sandbox`: `kubetron sandbox up|down|status`: a local OVN with networks and pods plugged by the
//! real CNI binary, for people to see kubetron work.
//!
//! Owns: the sandbox state directory and its netns. Must not touch anything outside them.
