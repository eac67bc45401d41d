# Run inside a container holding CAP_SYS_PTRACE while `exec`s join it:
# loops over /proc until /tmp/stop exists and logs to /tmp/race.log every
# breach it manages (a line per breach, `END` last). $1 is a host directory
# holding `host-secret`, absent from the container.
h="$1"
n=0
while [ ! -e /tmp/stop ]; do
    for p in $(ls /proc | grep -E '^[0-9]+$'); do
        [ "$p" = "$$" ] && continue
        # The host, through a joining process's root, cwd or descriptors.
        if cat /proc/$p/root$h/host-secret 2>/dev/null; then echo "ROOT-READ $p"; fi
        if (echo pwned > /proc/$p/root$h/pwned) 2>/dev/null; then echo "ROOT-WRITE $p"; fi
        if cat /proc/$p/cwd/host-secret 2>/dev/null; then echo "CWD-READ $p"; fi
        # A container process's own cwd is writable; only a file appearing in
        # the host directory (checked by the test) is a breach.
        (echo pwned > /proc/$p/cwd/pwned) 2>/dev/null
        for f in /proc/$p/fd/*; do
            if [ -e "$f/host-secret" ] || [ -e "$f/cgroup.procs" ]; then echo "FD-DIR $p $f $(ls $f | head -3 | tr '\n' ' ')"; fi
        done 2>/dev/null
        # The binary of a joining runtime process, held and written.
        c=$(cat /proc/$p/comm 2>/dev/null) || continue
        case "$c" in engine-*) ;; *) continue ;; esac
        command exec 3</proc/$p/exe 2>/dev/null || continue
        # It may have exec'd the container's program (busybox) already: no breach.
        cat /proc/self/fd/3 > /tmp/exe.copy 2>/dev/null
        cmp -s /tmp/exe.copy /bin/busybox && { exec 3<&-; continue; }
        n=$((n+1))
        echo "held $p"
        if (echo pwned >> /proc/$p/exe) 2>/dev/null; then echo "OPENED-WRITE $p"; fi
        if (exec 4<>/proc/$p/exe) 2>/dev/null; then echo "OPENED-RDWR $p"; fi
        if (echo pwned >> /proc/self/fd/3) 2>/dev/null; then echo "REOPENED-WRITE $p"; fi
        while [ -e /proc/$p ]; do :; done
        if (echo pwned >> /proc/self/fd/3) 2>/dev/null; then echo "REOPENED-WRITE-AFTER-EXIT $p"; fi
        exec 3<&-
    done
done > /tmp/race.log 2>&1
echo "held-total $n" >> /tmp/race.log
echo END >> /tmp/race.log
