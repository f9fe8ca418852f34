#!/bin/sh
# The Linux guest's init for scripts/nested-faults.sh (kernel command line
# rdinit=/faults-init), the same under both VMMs: fork storms, then a marker
# and a power-off. Parameters from the command line (the kernel hands
# unknown name=value words to init as environment variables):
#   faults_storms  storms in a row (default 4)
#   faults_procs   concurrent shells per storm (default 32)
#   faults_kmsg    lines printed through the kernel's console first
#                  (default 0; level 2, so "quiet" does not hide them;
#                  rounds.sh boots with printk.devkmsg=on, or the kernel
#                  would rate-limit them away)
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t tmpfs tmpfs /tmp
mount -t devtmpfs dev /dev 2>/dev/null
storms=${faults_storms:-4}
procs=${faults_procs:-32}
kmsg=${faults_kmsg:-0}
echo "FAULTS-GUEST-UP cpus=$(grep -c ^processor /proc/cpuinfo) storms=$storms procs=$procs kmsg=$kmsg"
# printk's console path: the polled 8250 write, a port read and a port
# write per character, each an exit to the VMM (a boot's own messages).
line=$(printf '%090d' 0)
k=1
while [ "$k" -le "$kmsg" ]; do
    echo "<2>kmsg $k $line" > /dev/kmsg
    k=$((k + 1))
done
[ "$kmsg" -gt 0 ] && echo "FAULTS-GUEST-KMSG $kmsg lines"
s=1
while [ "$s" -le "$storms" ]; do
    i=1
    # Like vm_linux's many_processes_at_once: 32 shells at once, each forking
    # short sleeps, then a pipeline writing 2000 lines.
    while [ "$i" -le "$procs" ]; do
        sh -c "n=0; while [ \$n -lt 10 ]; do sleep 0.05; n=\$((n+1)); done; seq 1 2000 | sed s/^/$i:/ > /tmp/out-$i; exit $i" &
        i=$((i + 1))
    done
    wait
    lines=$(cat /tmp/out-* | wc -l)
    echo "FAULTS-GUEST-STORM $s lines=$lines"
    rm -f /tmp/out-*
    s=$((s + 1))
done
echo "FAULTS-GUEST-DONE"
poweroff -f
# poweroff -f returns only if the power-off failed.
echo "FAULTS-GUEST-POWEROFF-FAILED"
sleep 5
reboot -f
