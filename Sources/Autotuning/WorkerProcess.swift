import Foundation
import Synchronization
import Glibc

/// Why a worker process could not be used at all (it cannot be started, or the request is malformed).
public struct WorkerProcessError: Error, Sendable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// A child process that answers one line on stdout for every line it reads on stdin.
///
/// Candidates that may crash or hang the OpenCL runtime are evaluated in such a worker. When the worker dies
/// before answering, or does not answer within the time limit, its whole process group is killed (SIGKILL), the
/// worker is reaped, and the next request transparently starts a fresh one.
///
/// The worker runs in its own process group with the parent's environment plus `environment`, plus
/// ``parentEnvironmentVariable`` (`TUNEDKERNELS_WORKER_PARENT`), always set to this process's pid. Being in its own
/// group, the worker survives a parent killed with SIGKILL; it should call
/// `ParentWatchdog.start(expectedParent: ParentWatchdog.expectedParentFromEnvironment())` first thing, to die with its
/// parent (see ``ParentWatchdog``), even if the parent died before that call. Its stdin is one
/// end of a Unix socket pair (written with `MSG_NOSIGNAL`, so a dead worker never raises SIGPIPE in the parent);
/// its stdout and stderr are pipes, both read while a request waits, so a chatty worker cannot block on a full
/// stderr pipe. Requests are serialized: one request at a time per instance.
public final class WorkerProcess: @unchecked Sendable {
    public enum Outcome: Sendable, Equatable {
        /// The worker's one-line answer, without the newline.
        case reply(String)
        /// The worker exited or was killed by a signal before answering. `status` is the exit code, or
        /// 128 + the signal number; -1 when it is unknown. `stderrTail` is the end (at most 4 KiB) of what
        /// the worker wrote to stderr during this request.
        case crashed(status: Int32, stderrTail: String)
        /// No answer within the limit; the worker was killed.
        case timedOut(seconds: Double)
    }

    /// The environment variable in which a worker finds its parent's pid (decimal), for
    /// ``ParentWatchdog/start(expectedParent:interval:status:)``. Set for every worker; it overrides both the
    /// inherited value and one given in `environment`.
    public static let parentEnvironmentVariable = "TUNEDKERNELS_WORKER_PARENT"

    public let executable: String
    public let arguments: [String]
    private let environmentOverrides: [String: String]?
    private let state = Mutex(State())
    private let startCount = Atomic<Int>(0)

    /// `executable` is a path, or a name looked up in the parent's `PATH`.
    public init(executable: String, arguments: [String], environment: [String: String]? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.environmentOverrides = environment
    }

    deinit {
        state.withLock { shutDown(&$0) }
    }

    /// How many times the worker process has been started.
    public var starts: Int { startCount.load(ordering: .relaxed) }

    /// Sends one line and waits up to `timeout` seconds for one line back. Starts the worker if it is not
    /// running (also after a crash or timeout, or when it died while idle). Throws only if `line` contains a
    /// line break or the worker cannot be started at all.
    public func request(_ line: String, timeout: Double) throws -> Outcome {
        if line.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) {
            throw WorkerProcessError("worker request must be a single line without line breaks: \(line.debugDescription)")
        }
        return try state.withLock { state throws(WorkerProcessError) -> Outcome in
            try perform(&state, line: line, timeout: timeout)
        }
    }

    /// Stops the worker: closes its stdin, waits briefly for it to exit, then kills its process group.
    /// The next request starts a fresh worker.
    public func stop() {
        state.withLock { shutDown(&$0) }
    }

    // MARK: - State

    private struct Child: Sendable {
        let pid: pid_t
        var input: Int32
        var output: Int32
        var errors: Int32

        mutating func closeAll() {
            for fd in [input, output, errors] where fd >= 0 { close(fd) }
            input = -1
            output = -1
            errors = -1
        }
    }

    private struct State: Sendable {
        var child: Child?
        /// Killed workers that did not die within the grace period (e.g. stuck in a driver); reaped later.
        var unreaped: [pid_t] = []
    }

    private static let stderrTailBytes = 4096
    /// How long to wait for a killed or stopping worker to go away.
    private static let graceSeconds = 0.5
    /// How long to wait for a SIGKILLed worker to be reapable before deferring the reaping.
    private static let reapSeconds = 2.0

    // MARK: - Request

    private func perform(_ state: inout State, line: String, timeout: Double) throws(WorkerProcessError) -> Outcome {
        Self.reapUnreaped(&state)
        if let child = state.child, Self.hasExited(child.pid) {
            // Died while idle: not this request's fault, so start a fresh worker for it.
            Self.killGroup(child.pid)
            _ = Self.finish(child, state: &state)
            state.child = nil
        }
        var child: Child
        if let running = state.child {
            child = running
        } else {
            child = try spawn()
            state.child = child
        }

        // Forget anything the worker printed between requests.
        var outputOpen = Self.discardAvailable(child.output)
        var errorsOpen = Self.discardAvailable(child.errors)

        var pending = Array(line.utf8)
        pending.append(0x0A)
        var written = 0
        var reply: [UInt8] = []
        var tail = Tail(limit: Self.stderrTailBytes)
        let limit = timeout.isNaN ? 0 : max(0, timeout)
        let deadline = Self.now() + limit

        while true {
            var fds: [pollfd] = [
                pollfd(fd: outputOpen ? child.output : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: errorsOpen ? child.errors : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: written < pending.count ? child.input : -1, events: Int16(POLLOUT), revents: 0),
            ]
            let remaining = deadline - Self.now()
            // Short slices so that a worker whose pipes are held open by a grandchild is still noticed dying.
            let waitMs = Int32((min(max(remaining, 0), 0.05) * 1000).rounded(.up))
            if poll(&fds, nfds_t(fds.count), waitMs) < 0 && errno != EINTR {
                usleep(1000)  // out of memory, most likely: try again, the deadline still holds
                continue
            }

            if fds[2].revents != 0 && written < pending.count {
                if !Self.sendAvailable(child.input, pending, written: &written) {
                    // The worker closed its stdin or is dead; it cannot get the request.
                    close(child.input)
                    child.input = -1
                    written = pending.count
                    state.child = child
                }
            }
            if fds[0].revents != 0 {
                outputOpen = Self.readAvailable(child.output) { chunk in reply.append(contentsOf: chunk) }
                if let newline = reply.firstIndex(of: 0x0A) {
                    return .reply(String(decoding: reply[..<newline], as: UTF8.self))
                }
            }
            if fds[1].revents != 0 {
                errorsOpen = Self.readAvailable(child.errors) { chunk in tail.append(chunk) }
            }

            if Self.hasExited(child.pid) {
                // The worker is a zombie now: kill anything left in its group, collect its last output.
                Self.killGroup(child.pid)
                let drainDeadline = Self.now() + Self.graceSeconds
                while outputOpen || errorsOpen {
                    var fds = [
                        pollfd(fd: outputOpen ? child.output : -1, events: Int16(POLLIN), revents: 0),
                        pollfd(fd: errorsOpen ? child.errors : -1, events: Int16(POLLIN), revents: 0),
                    ]
                    let remaining = drainDeadline - Self.now()
                    if remaining <= 0 { break }
                    _ = poll(&fds, nfds_t(fds.count), Int32((remaining * 1000).rounded(.up)))
                    if fds[0].revents != 0 {
                        outputOpen = Self.readAvailable(child.output) { chunk in reply.append(contentsOf: chunk) }
                    }
                    if fds[1].revents != 0 {
                        errorsOpen = Self.readAvailable(child.errors) { chunk in tail.append(chunk) }
                    }
                }
                let status = Self.finish(child, state: &state)
                state.child = nil
                if let newline = reply.firstIndex(of: 0x0A) {
                    // It answered, then died: the answer still counts.
                    return .reply(String(decoding: reply[..<newline], as: UTF8.self))
                }
                return .crashed(status: status, stderrTail: tail.text)
            }

            if Self.now() >= deadline {
                Self.killGroup(child.pid)
                _ = Self.finish(child, state: &state)
                state.child = nil
                return .timedOut(seconds: timeout)
            }
        }
    }

    private func shutDown(_ state: inout State) {
        defer { Self.reapUnreaped(&state) }
        guard var child = state.child else { return }
        state.child = nil
        if child.input >= 0 {
            close(child.input)
            child.input = -1
        }
        // Give it a moment to exit on end of input, discarding what it still prints so that it cannot block.
        let deadline = Self.now() + Self.graceSeconds
        var outputOpen = true
        var errorsOpen = true
        while !Self.hasExited(child.pid) && Self.now() < deadline {
            var fds = [
                pollfd(fd: outputOpen ? child.output : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: errorsOpen ? child.errors : -1, events: Int16(POLLIN), revents: 0),
            ]
            _ = poll(&fds, nfds_t(fds.count), 5)
            if fds[0].revents != 0 { outputOpen = Self.readAvailable(child.output) { _ in } }
            if fds[1].revents != 0 { errorsOpen = Self.readAvailable(child.errors) { _ in } }
        }
        Self.killGroup(child.pid)
        _ = Self.finish(child, state: &state)
    }

    // MARK: - Starting

    private func spawn() throws(WorkerProcessError) -> Child {
        // Spawns are serialized process-wide, so that the pipes of a worker being started by one thread cannot
        // leak into a worker started at the same moment by another (Glibc's module does not export pipe2, so
        // close-on-exec is set right after pipe()). A leaked pipe end would keep end-of-file from arriving.
        try Self.spawnLock.withLock { _ throws(WorkerProcessError) -> Child in try spawnSerialized() }
    }

    private static let spawnLock = Mutex(())

    private func spawnSerialized() throws(WorkerProcessError) -> Child {
        var input: [Int32] = [-1, -1]
        var output: [Int32] = [-1, -1]
        var errors: [Int32] = [-1, -1]
        func closeAll() {
            for fd in input + output + errors where fd >= 0 { close(fd) }
        }
        // stdin is a socket, so that writes can use MSG_NOSIGNAL: a dead worker must not raise SIGPIPE here.
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &input) == 0,
              pipe(&output) == 0,
              pipe(&errors) == 0
        else {
            let code = errno
            closeAll()
            throw WorkerProcessError("cannot start worker '\(executable)': cannot create pipes: \(Self.errorText(code))")
        }
        for i in 0..<2 {
            // Close-on-exec on every end; the dup2 file actions below clear it on the child's fds 0, 1, 2.
            input[i] = Self.closeOnExecAboveStandardDescriptors(input[i])
            output[i] = Self.closeOnExecAboveStandardDescriptors(output[i])
            errors[i] = Self.closeOnExecAboveStandardDescriptors(errors[i])
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[1], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)  // own process group, so that a kill reaches its children too
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        sigaddset(&defaultSignals, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)

        var environment = ProcessInfo.processInfo.environment
        for (name, value) in environmentOverrides ?? [:] { environment[name] = value }
        environment[Self.parentEnvironmentVariable] = String(getpid())
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }

        var pid: pid_t = 0
        let result = posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
        if result != 0 {
            closeAll()
            throw WorkerProcessError("cannot start worker '\(executable)': \(Self.errorText(result))")
        }
        close(input[1])
        close(output[1])
        close(errors[1])
        for fd in [input[0], output[0], errors[0]] {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        startCount.add(1, ordering: .relaxed)
        return Child(pid: pid, input: input[0], output: output[0], errors: errors[0])
    }

    /// Sets close-on-exec, moving a descriptor to 3 or above if needed: dup2 onto 0...2 from the same number
    /// would be a no-op that keeps the flag (possible when the parent runs with a standard descriptor closed).
    private static func closeOnExecAboveStandardDescriptors(_ fd: Int32) -> Int32 {
        if fd > 2 {
            _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
            return fd
        }
        let moved = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        guard moved >= 0 else { return fd }
        close(fd)
        return moved
    }

    // MARK: - Ending

    /// Whether the worker has terminated (it stays a zombie, so its pid and process group stay reserved).
    private static func hasExited(_ pid: pid_t) -> Bool {
        while true {
            var info = siginfo_t()
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 {
                return info.si_signo == SIGCHLD
            }
            if errno != EINTR { return true }  // ECHILD: someone else reaped it
        }
    }

    private static func killGroup(_ pid: pid_t) {
        if kill(-pid, SIGKILL) != 0 {
            _ = kill(pid, SIGKILL)
        }
    }

    /// Closes the worker's descriptors and reaps it; returns its status (exit code, 128 + signal, or -1).
    /// A worker that is not reapable within `reapSeconds` (it must have been killed) is reaped later.
    private static func finish(_ child: Child, state: inout State) -> Int32 {
        var child = child
        child.closeAll()
        let deadline = now() + reapSeconds
        var status: Int32 = 0
        while true {
            let result = waitpid(child.pid, &status, WNOHANG)
            if result == child.pid { return decode(status) }
            if result < 0 && errno == EINTR { continue }
            if result < 0 { return -1 }
            if now() >= deadline {
                killGroup(child.pid)
                state.unreaped.append(child.pid)
                return -1
            }
            _ = poll(nil, 0, 2)
        }
    }

    private static func reapUnreaped(_ state: inout State) {
        state.unreaped.removeAll { pid in
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            return result == pid || (result < 0 && errno == ECHILD)
        }
    }

    private static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        if signal == 0 { return (status >> 8) & 0xFF }  // exited
        if signal != 0x7F { return 128 + signal }       // killed by a signal
        return -1                                       // stopped (not requested, so not expected)
    }

    // MARK: - I/O

    /// Writes what the socket accepts now; false when the worker can no longer receive.
    private static func sendAvailable(_ fd: Int32, _ bytes: [UInt8], written: inout Int) -> Bool {
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                send(fd, buffer.baseAddress! + written, buffer.count - written, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                written += count
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return true
            } else {
                return false
            }
        }
        return true
    }

    /// Reads everything available now from a non-blocking descriptor; false at end of file (or on an error).
    private static func readAvailable(_ fd: Int32, _ sink: (UnsafeRawBufferPointer) -> Void) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 65536, alignment: 1) { buffer in
            while true {
                let count = read(fd, buffer.baseAddress, buffer.count)
                if count > 0 {
                    sink(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                } else if count == 0 {
                    return false
                } else if errno == EINTR {
                    continue
                } else {
                    return errno == EAGAIN || errno == EWOULDBLOCK
                }
            }
        }
    }

    /// Throws away what is available now (bounded, for a worker that never stops printing); false at end of file.
    private static func discardAvailable(_ fd: Int32) -> Bool {
        var discarded = 0
        return withUnsafeTemporaryAllocation(byteCount: 65536, alignment: 1) { buffer in
            while discarded < 1 << 20 {
                let count = read(fd, buffer.baseAddress, buffer.count)
                if count > 0 {
                    discarded += count
                } else if count == 0 {
                    return false
                } else if errno != EINTR {
                    return true
                }
            }
            return true
        }
    }

    private struct Tail {
        let limit: Int
        var bytes: [UInt8] = []

        mutating func append(_ chunk: UnsafeRawBufferPointer) {
            bytes.append(contentsOf: chunk)
            if bytes.count > 2 * limit { bytes.removeFirst(bytes.count - limit) }
        }

        var text: String {
            let cut = max(0, bytes.count - limit)
            var start = cut
            // Do not start in the middle of a UTF-8 sequence (at most 3 continuation bytes).
            while start < min(bytes.count, cut + 3) && bytes[start] & 0xC0 == 0x80 { start += 1 }
            return String(decoding: bytes[start...], as: UTF8.self)
        }
    }

    private static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }

    private static func errorText(_ code: Int32) -> String {
        "\(String(cString: strerror(code))) (errno \(code))"
    }
}
