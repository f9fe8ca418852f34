//! Facts about the host's KVM that decide which guests can run.

/// True when /dev/kvm is kvm_pvm, the software hypervisor of these build
/// machines: it emulates guest kernel code and cannot boot an unmodified
/// Linux kernel (it dies on XSAVE/XRSTOR, CMPXCHG16B and INT3 in early boot).
pub fn is_kvm_pvm() -> bool {
    std::path::Path::new("/sys/module/kvm_pvm").exists()
}

/// Why a real Linux guest cannot boot here, if it cannot.
pub fn linux_guest_unsupported_reason() -> Option<String> {
    if !std::path::Path::new("/dev/kvm").exists() {
        return Some("/dev/kvm does not exist".into());
    }
    is_kvm_pvm().then(|| {
        "/dev/kvm is kvm_pvm (a software hypervisor): unmodified Linux kernels stop at XSAVE, \
         CMPXCHG16B or INT3 during early boot under it"
            .into()
    })
}
