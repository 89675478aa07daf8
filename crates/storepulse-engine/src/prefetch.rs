//! Asking the CPU to start loading memory an event will need, while it works on the event
//! before (see [`crate::Engine::apply_all`]).

/// Starts loading the cache line holding `value` into every cache level, without waiting for
/// it. Changes nothing the program can observe but timing; a no-op off x86-64.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    safe_arch::prefetch_t0(value);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
