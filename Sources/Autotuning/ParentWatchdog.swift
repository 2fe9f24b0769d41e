import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Ends a worker process when the process that started it is gone.
///
/// A ``WorkerProcess`` runs in its own process group, so a parent killed with SIGKILL (which cannot be caught)
/// leaves its worker running: reading stdin, it notices end of input only after the request it is running,
/// possibly a long kernel, has finished. A worker calls ``start(expectedParent:interval:status:)`` first thing
/// instead; a background thread then ends it within `interval` seconds of its parent's death.
///
/// The parent is gone when this process's parent pid (`getppid()`) is no longer the expected one: an orphan is
/// adopted by init or by a subreaper, whose pid differs from its dead parent's. Unlike Linux's
/// `prctl(PR_SET_PDEATHSIG)`, this follows the parent *process*: that signal fires when the parent *thread* that
/// spawned the worker ends, which would kill a worker spawned from a thread that finished while its process lives on.
///
/// ``WorkerProcess`` passes its own pid to the worker in ``WorkerProcess/parentEnvironmentVariable``
/// (`TUNEDKERNELS_WORKER_PARENT`); ``expectedParentFromEnvironment(_:)`` reads it, so that a parent that died between
/// the spawn and the call to ``start(expectedParent:interval:status:)`` is noticed too. That pid is the worker's
/// parent only when the worker is the process ``WorkerProcess`` spawned (or one it `exec`s, as `env` or `taskset`
/// do), not the child of a wrapper that forks: such a worker would find its parent "gone" and exit at once.
public enum ParentWatchdog {
    /// Starts a background thread that ends this process (`_exit(status)`) as soon as its parent process is gone
    /// (its parent pid changes from `expectedParent`, checked every `interval` seconds). If the parent is already
    /// gone when called, exits at once. Call it first thing in a worker process.
    ///
    /// `_exit` ends the process without running `atexit` handlers or flushing stdio buffers: nobody reads them
    /// any more. The default status, 70, is `EX_SOFTWARE`.
    public static func start(expectedParent: pid_t = getppid(), interval: Double = 0.1, status: Int32 = 70) {
        watch(expectedParent: expectedParent, interval: interval) { _exit(status) }
    }

    /// Whether the parent a process expected is gone, given its current parent pid.
    public static func parentIsGone(expected: pid_t, current: pid_t) -> Bool {
        current != expected
    }

    /// What ``start(expectedParent:interval:status:)`` does, with the reaction and the parent lookup given: if
    /// ``parentIsGone(expected:current:)`` already holds for `currentParent()`, calls `whenGone` at once on the
    /// calling thread; otherwise starts a detached thread that checks every `interval` seconds (at least 1 ms)
    /// and calls `whenGone` once, on that thread, when it holds, then stops checking.
    public static func watch(expectedParent: pid_t, interval: Double,
                             currentParent: @escaping @Sendable () -> pid_t = { getppid() },
                             whenGone: @escaping @Sendable () -> Void) {
        if parentIsGone(expected: expectedParent, current: currentParent()) {
            whenGone()
            return
        }
        let seconds = interval.isNaN ? 0.1 : min(max(interval, 0.001), 3600)
        Thread.detachNewThread {
            while true {
                Thread.sleep(forTimeInterval: seconds)
                if parentIsGone(expected: expectedParent, current: currentParent()) {
                    whenGone()
                    return
                }
            }
        }
    }

    /// The parent pid a ``WorkerProcess`` passed in `TUNEDKERNELS_WORKER_PARENT`, or `getppid()` when the
    /// variable is absent or not a pid (a worker started by hand).
    public static func expectedParentFromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> pid_t {
        if let text = environment[WorkerProcess.parentEnvironmentVariable], let pid = pid_t(text), pid > 0 { return pid }
        return getppid()
    }
}
