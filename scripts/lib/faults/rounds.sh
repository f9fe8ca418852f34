#!/bin/sh
# Inside L1 (scripts/nested-faults.sh): N rounds, each booting the same
# Linux guest (kernel, initramfs + guest-init.sh as rdinit) with 2 vCPUs
# first under our VMM (through the `hcs` client and hcs-monitor), then under
# QEMU's microvm machine with KVM; one line per boot:
#   FAULTS-ROUND <round> <hcs|qemu> <result> <seconds> <detail>
# result: completed, triple-fault, panic, timeout or other.
# Usage: rounds.sh N KERNEL INITRD QEMU ROUND_TIMEOUT STORMS KMSG
n=$1 kernel=$2 initrd=$3 qemu=$4 limit=$5 storms=$6 kmsg=${7:-0}
cmdline="console=ttyS0 panic=-1 reboot=k quiet printk.devkmsg=on pci=off 8250.nr_uarts=1 rdinit=/faults-init faults_storms=$storms faults_kmsg=$kmsg"
export HCS_MONITOR=/nested/bin/hcs-monitor HCS_LOG=info

# The console's verdict, if it has one: stall (the guest's RCU stall or
# lockup detectors fired: a vCPU stopped making progress, whatever came
# after), panic, or completed (its marker, and the VMM then ended: $2 is
# the wait's or QEMU's exit code).
console_verdict() {
    if grep -qE "detected stalls|soft lockup|hard LOCKUP|blocked for more than" "$1"; then echo stall
    elif grep -qE "Kernel panic|BUG:|Oops" "$1"; then echo panic
    elif grep -q "^FAULTS-GUEST-DONE" "$1" && [ "$2" -eq 0 ]; then echo completed
    fi
}

# The end of a boot's console and monitor log, when it did not complete
# (a stall's report is long: the console gets more lines).
show_tail() {
    [ "$1" = completed ] && return
    for f in "$2"/console.log "$2"/*.log "$2"/qemu.tail "$2"/status.json; do
        lines=15
        [ "$f" = "$2/console.log" ] && lines=80
        [ -f "$f" ] && tail -n $lines "$f" | sed "s|^|FAULTS-TAIL $f: |"
    done
}

one_line() { tr '\n\r' '  ' | sed 's/  */ /g' | cut -c1-160; }

hcs_round() {
    d=/tmp/faults/$1/hcs
    mkdir -p "$d"
    cat > "$d/doc.json" <<DOC
{ "SchemaVersion": { "Major": 2, "Minor": 1 }, "Owner": "nested-faults",
  "ShouldTerminateOnLastHandleClosed": false,
  "VirtualMachine": { "StopOnReset": true,
    "Chipset": { "LinuxKernelDirect": { "KernelFilePath": "$kernel", "InitRdPath": "$initrd",
                                        "KernelCmdLine": "$cmdline" } },
    "ComputeTopology": { "Memory": { "SizeInMB": 512 }, "Processor": { "Count": 2 } },
    "Devices": { "ComPorts": { "0": { "NamedPipe": "$d/console.log" } } } } }
DOC
    id=faults-$1
    t0=$(date +%s)
    export HCS_MONITOR_LOG_DIR=$d
    if ! timeout -s KILL 60 /nested/bin/hcs -n faults run "$id" "$d/doc.json" > "$d/run.out" 2>&1; then
        echo "FAULTS-ROUND $1 hcs other 0 create/start failed: $(one_line < "$d/run.out")"
        return
    fi
    timeout -s KILL $((limit + 30)) /nested/bin/hcs -n faults wait "$id" --timeout $((limit * 1000)) > "$d/status.json" 2>&1
    rc=$?
    secs=$(( $(date +%s) - t0 ))
    timeout -s KILL 30 /nested/bin/hcs -n faults terminate "$id" > /dev/null 2>&1
    touch "$d/console.log"
    v=$(console_verdict "$d/console.log" $rc)
    detail=$(grep -ho '"[A-Za-z]*Exit[A-Za-z]*": *"[A-Za-z]*"\|"Detail": *"[A-Za-z]*"' "$d/status.json" | one_line)
    if [ -z "$v" ]; then
        if grep -qs "triple-faulted" "$d"/*.log "$d/status.json"; then
            v=triple-fault
            detail="$detail $(grep -hos 'vCPU [0-9]* triple-faulted[^"]*' "$d"/*.log "$d/status.json" | head -n 1)"
        elif [ $rc -ne 0 ]; then
            v=timeout
            detail="wait rc $rc; $(tail -c 200 "$d/status.json" | one_line)"
        else
            v=other
        fi
    fi
    echo "FAULTS-ROUND $1 hcs $v $secs $detail; kmsg lines $(grep -c "kmsg [0-9]" "$d/console.log"); last console: $(grep -v '^$' "$d/console.log" | tail -n 1 | one_line)"
    show_tail "$v" "$d"
}

qemu_round() {
    d=/tmp/faults/$1/qemu
    mkdir -p "$d"
    t0=$(date +%s)
    # -no-reboot: a reset (a triple fault under KVM is KVM_EXIT_SHUTDOWN,
    # which QEMU takes as a guest reset) ends QEMU; the trace tells which.
    timeout -s KILL "$limit" "$qemu" -M microvm,acpi=on -enable-kvm -cpu host -m 512 -smp 2 \
        -no-reboot -display none -monitor none -serial stdio -append "$cmdline" \
        -kernel "$kernel" -initrd "$initrd" \
        -d guest_errors -D "$d/qemu.log" -trace kvm_run_exit -trace qemu_system_shutdown_request \
        < /dev/null > "$d/console.log" 2> "$d/stderr.log"
    rc=$?
    secs=$(( $(date +%s) - t0 ))
    v=$(console_verdict "$d/console.log" $rc)
    tf=$(grep -hE "kvm_run_exit.*reason 8( |$)" "$d/qemu.log" "$d/stderr.log" | head -n 1 | one_line)
    sd=$(grep -hE "qemu_system_shutdown_request" "$d/qemu.log" "$d/stderr.log" | tail -n 1 | one_line)
    detail="exit $rc; $sd"
    if [ -z "$v" ]; then
        if [ -n "$tf" ]; then v=triple-fault; detail="$detail; $tf (KVM_EXIT_SHUTDOWN)"
        elif [ $rc -eq 137 ]; then v=timeout
        else v=other; detail="$detail; $(tail -c 200 "$d/stderr.log" | one_line)"
        fi
    fi
    echo "FAULTS-ROUND $1 qemu $v $secs $detail; kmsg lines $(grep -c "kmsg [0-9]" "$d/console.log"); last console: $(grep -v '^$' "$d/console.log" | tail -n 1 | one_line)"
    tail -n 50 "$d/qemu.log" > "$d/qemu.tail" 2>/dev/null; rm -f "$d/qemu.log"
    show_tail "$v" "$d"
}

i=1
while [ "$i" -le "$n" ]; do
    hcs_round "$i"
    qemu_round "$i"
    i=$((i + 1))
done
echo "FAULTS-L1-DMESG $(dmesg | grep -ciE 'bug|warn|corrupt|kvm') lines naming bug/warn/corrupt/kvm"
dmesg | grep -iE 'bug|warn|corrupt|kvm' | tail -n 10 | sed 's/^/FAULTS-L1-DMESG /'
