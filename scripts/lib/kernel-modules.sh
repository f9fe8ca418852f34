# shellcheck shell=bash
# Kernel modules from a Debian kernel package, in load order. Sourced by
# scripts/build-guest-image.sh (the Linux guest's initramfs) and
# scripts/nested-stage.sh (the L1 machine that runs our VMM).
#
#   kmod_extract DEB DIR        unpack the package's modules and kernel into
#                               DIR, run depmod there; sets kmod_version and
#                               kmod_dir (DIR/lib/modules/VERSION)
#   kmod_closure NAME...        kmod_order := the modules NAME... need, as
#                               paths relative to kmod_dir, dependencies first
#                               (a built-in module is left out, with a note)
#   kmod_install ROOT           copy kmod_order into ROOT/lib/modules/VERSION
#                               with a modules.dep of just those; prints the
#                               in-ROOT paths in load order
#
# The package ships no modules.dep (its postinst runs depmod), so depmod
# computes it here; modules.dep lists every dependency transitively, to be
# loaded from the last to the first.

kmod_extract() {
    local deb="$1" dir="$2" kernel_file
    mkdir -p "$dir"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" --wildcards './lib/modules/*' './boot/vmlinuz-*'
    kernel_file=("$dir"/boot/vmlinuz-*)
    kmod_version="$(basename "${kernel_file[0]}")"
    kmod_version="${kmod_version#vmlinuz-}"
    kmod_dir="$dir/lib/modules/$kmod_version"
    if [[ ! -d "$kmod_dir/kernel" ]]; then
        echo "no lib/modules/$kmod_version in $(basename "$deb")" >&2
        return 1
    fi
    PATH="$PATH:/usr/sbin:/sbin" depmod -b "$dir" "$kmod_version"
}

kmod_closure() {
    local line file name
    declare -gA kmod_dep_of=() kmod_path_of=() kmod_emitted=()
    kmod_order=()
    while IFS= read -r line; do
        file="${line%%:*}"
        name="$(basename "$file" .ko)"
        name="${name//-/_}"
        kmod_path_of[$name]="$file"
        kmod_dep_of[$file]="${line#*:}"
    done < "$kmod_dir/modules.dep"
    for name in "$@"; do
        file="${kmod_path_of[${name//-/_}]:-}"
        if [[ -z "$file" ]]; then
            if grep -q "/${name//_/[-_]}\.ko$" "$kmod_dir/modules.builtin" 2>/dev/null; then
                echo "kernel modules: $name is built into the kernel" >&2
                continue
            fi
            echo "kernel modules: $name is neither in modules.dep nor built in ($kmod_version)" >&2
            return 1
        fi
        _kmod_visit "$file"
    done
}

_kmod_visit() {
    local file="$1" deps i
    [[ -n "${kmod_emitted[$file]:-}" ]] && return 0
    read -r -a deps <<< "${kmod_dep_of[$file]}"
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
        _kmod_visit "${deps[i]}"
    done
    kmod_emitted[$file]=1
    kmod_order+=("$file")
}

kmod_install() {
    local root="$1" file
    for file in "${kmod_order[@]}"; do
        install -D -m 0644 "$kmod_dir/$file" "$root/lib/modules/$kmod_version/$file"
        echo "/lib/modules/$kmod_version/$file"
    done
    # A modules.dep of what is in ROOT, for busybox modprobe there.
    printf '%s\n' "${kmod_order[@]}" | awk 'NR == FNR { want[$0] = 1; next }
        { f = $0; sub(/:.*/, "", f); if (f in want) print }' - "$kmod_dir/modules.dep" \
        > "$root/lib/modules/$kmod_version/modules.dep"
    cp "$kmod_dir/modules.builtin" "$root/lib/modules/$kmod_version/modules.builtin"
}
