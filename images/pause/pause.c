/*
 * kubetron.local/pause: the pod sandbox process. It holds the pod's namespaces open and does
 * nothing else: it sleeps until SIGTERM or SIGINT (then exits 0), and as PID 1 of a shared PID
 * namespace it reaps every child that is re-parented to it. Built static by scripts/images.sh:
 *   gcc -static -O2 -s -o pause pause.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

/* SIGCHLD only has to interrupt sigsuspend: the reaping is done in the main loop. */
static void on_child(int sig) { (void)sig; }

static void reap(void) {
    for (;;) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid > 0) continue;
        if (pid < 0 && errno == EINTR) continue;
        return; /* 0: children left but none exited; -1 ECHILD: no children */
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
        puts("kubetron pause 1");
        return 0;
    }
    if (getpid() != 1) fputs("pause: not PID 1; orphans elsewhere will not be reaped here\n", stderr);

    /* Block the signals we wait for, so that none can arrive between a check and sigsuspend. */
    sigset_t blocked, waitmask;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &blocked, &waitmask) != 0) {
        perror("pause: sigprocmask");
        return 1;
    }
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGCHLD);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        perror("pause: sigaction");
        return 1;
    }
    sa.sa_handler = on_child;
    sa.sa_flags = SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &sa, NULL) != 0) {
        perror("pause: sigaction");
        return 1;
    }

    while (!stop_signal) {
        reap();
        sigsuspend(&waitmask); /* always returns -1 EINTR once a handler ran */
    }
    reap();
    return 0;
}
