/*
 * Smoke-test init for the sigil enclave kernel (not the real enclave init).
 *
 * Runs as PID 1 from the initramfs, prints SIGIL-SMOKE lines on the
 * console, checks what the enclave userland relies on, then calls
 * reboot(RB_POWER_OFF). The harness (smoke-boot) greps the console for
 * "SIGIL-SMOKE: PASS" / "FAIL".
 *
 * Optional: when the kernel command line carries sigil.vsock_port=N the
 * init connects to the host (CID 2) on vsock port N, sends a line and
 * expects it echoed back.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define SAY(...) do { printf("SIGIL-SMOKE: " __VA_ARGS__); fflush(stdout); } while (0)
#define CHECK(name, cond) do { \
        if (cond) SAY("ok   %s\n", name); \
        else { SAY("FAIL %s (%s)\n", name, strerror(errno)); failures++; } \
    } while (0)

static void cat_line(const char *label, const char *path)
{
    char buf[512] = "";
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
    SAY("%s: %s\n", label, f ? buf : "(unreadable)");
}

static void *thread_fn(void *arg) { return arg; }

static int loopback_tcp(void)
{
    /* bring lo up, then a TCP round trip on 127.0.0.1 */
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) return -1;
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) return -1;
    close(s);

    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (void *)&a, sizeof a) < 0 || listen(l, 1) < 0
        || getsockname(l, (void *)&a, &al) < 0) return -1;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (void *)&a, sizeof a) < 0) return -1;
    int d = accept(l, NULL, NULL);
    char buf[8] = "";
    if (d < 0 || write(c, "ping", 4) != 4 || read(d, buf, sizeof buf) != 4) return -1;
    close(c); close(d); close(l);
    return memcmp(buf, "ping", 4) == 0 ? 0 : -1;
}

static int vsock_echo(unsigned port)
{
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port };
    const char msg[] = "sigil-vsock-ping\n";
    char buf[64] = "";
    if (s < 0 || connect(s, (void *)&a, sizeof a) < 0) return -1;
    if (write(s, msg, sizeof msg - 1) != (ssize_t)(sizeof msg - 1)) return -1;
    ssize_t n = 0, r;
    while (n < (ssize_t)(sizeof msg - 1) && (r = read(s, buf + n, sizeof buf - 1 - n)) > 0) n += r;
    close(s);
    return n == (ssize_t)(sizeof msg - 1) && memcmp(buf, msg, n) == 0 ? 0 : -1;
}

int main(int argc, char **argv, char **envp)
{
    SAY("init started (pid %d)\n", getpid());
    for (int i = 0; i < argc; i++) SAY("argv[%d]=%s\n", i, argv[i]);
    for (char **e = envp; *e; e++) SAY("env %s\n", *e);

    CHECK("mount proc", mount("proc", "/proc", "proc", 0, NULL) == 0);
    CHECK("mount sysfs", mount("sysfs", "/sys", "sysfs", 0, NULL) == 0);
    CHECK("mount devtmpfs", mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) == 0);
    CHECK("mount tmpfs", mkdir("/tmp", 01777) == 0 && mount("tmpfs", "/tmp", "tmpfs", 0, NULL) == 0);

    cat_line("uptime at init", "/proc/uptime");
    cat_line("kernel", "/proc/version");
    cat_line("cmdline", "/proc/cmdline");
    cat_line("clocksource", "/sys/devices/system/clocksource/clocksource0/current_clocksource");
    cat_line("hwrng", "/sys/class/misc/hw_random/rng_current");

    struct stat st;
    CHECK("/dev/vsock exists", stat("/dev/vsock", &st) == 0 && S_ISCHR(st.st_mode));
    SAY("/dev/nsm %s\n", stat("/dev/nsm", &st) == 0 ? "present" : "absent (no NSM device on this VM)");
    SAY("/dev/hwrng %s\n", stat("/dev/hwrng", &st) == 0 ? "present" : "absent");

    DIR *d = opendir("/sys/bus/virtio/devices");
    CHECK("/sys/bus/virtio/devices", d != NULL);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char p[300];
            snprintf(p, sizeof p, "/sys/bus/virtio/devices/%s/device", de->d_name);
            char label[300];
            snprintf(label, sizeof label, "virtio device %s id", de->d_name);
            cat_line(label, p);
        }
        closedir(d);
    }

    /* syscalls Rust std / mio / the threaded server rely on */
    CHECK("epoll_create1", epoll_create1(EPOLL_CLOEXEC) >= 0);
    CHECK("eventfd", eventfd(0, EFD_CLOEXEC) >= 0);
    CHECK("timerfd_create", timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC) >= 0);
    sigset_t ss; sigemptyset(&ss); sigaddset(&ss, SIGUSR1);
    CHECK("signalfd", signalfd(-1, &ss, SFD_CLOEXEC) >= 0);
    timer_t t;
    CHECK("timer_create", timer_create(CLOCK_MONOTONIC, NULL, &t) == 0);
    pthread_t th;
    CHECK("pthread_create/join", pthread_create(&th, NULL, thread_fn, NULL) == 0 && pthread_join(th, NULL) == 0);
    int sv[2];
    CHECK("AF_UNIX socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK("AF_VSOCK socket", socket(AF_VSOCK, SOCK_STREAM, 0) >= 0);
    CHECK("TCP over lo (127.0.0.1)", loopback_tcp() == 0);
    unsigned char rnd[16];
    CHECK("getrandom", getentropy(rnd, sizeof rnd) == 0);

    char cmdline[1024] = "";
    int fd = open("/proc/cmdline", O_RDONLY);
    if (fd >= 0) { ssize_t n = read(fd, cmdline, sizeof cmdline - 1); if (n > 0) cmdline[n] = 0; close(fd); }
    char *vp = strstr(cmdline, "sigil.vsock_port=");
    if (vp) {
        unsigned port = (unsigned)strtoul(vp + strlen("sigil.vsock_port="), NULL, 10);
        CHECK("vsock echo via host CID 2", vsock_echo(port) == 0);
    }

    cat_line("uptime at end", "/proc/uptime");
    if (failures) SAY("FAIL (%d checks failed)\n", failures);
    else SAY("PASS\n");
    SAY("calling reboot(RB_POWER_OFF)\n");
    /* the console tty is interrupt-driven: let it drain before the
       kernel powers off, or the last lines are lost */
    tcdrain(STDOUT_FILENO);
    sync();
    reboot(RB_POWER_OFF);
    SAY("reboot(RB_POWER_OFF) returned: %s\n", strerror(errno));
    for (;;) pause();
}
