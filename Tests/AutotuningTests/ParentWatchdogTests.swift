import Autotuning
import Foundation
import Glibc
import Synchronization
import Testing

/// ``ParentWatchdog``'s decision and its watching thread, with the parent lookup and the reaction replaced: the real
/// reaction ends the process, which a test cannot survive (the end-to-end check runs a separate executable by hand).
@Suite struct ParentWatchdogTests {
    /// Calls to `whenGone`, and whether the last one ran on the thread that called `watch`.
    final class Calls: Sendable {
        private let calls = Atomic<Int>(0)
        private let lastOnCallingThread = Atomic<Bool>(false)
        private let caller = pthread_self()

        func record() {
            lastOnCallingThread.store(pthread_equal(pthread_self(), caller) != 0, ordering: .relaxed)
            calls.add(1, ordering: .relaxed)
        }

        var count: Int { calls.load(ordering: .relaxed) }
        var onCallingThread: Bool { lastOnCallingThread.load(ordering: .relaxed) }
    }

    /// A parent pid the test changes.
    final class FakeParent: Sendable {
        private let current: Atomic<Int32>
        init(_ pid: pid_t) { current = Atomic(pid) }
        var pid: pid_t {
            get { current.load(ordering: .relaxed) }
            set { current.store(newValue, ordering: .relaxed) }
        }
    }

    /// The most a test waits for something that should happen: a generous limit that only catches a hang on a busy
    /// machine; every wait returns as soon as it is over.
    static let patience = 30.0

    static func waitUntil(_ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(patience)
        while !condition() {
            if Date() > deadline { return false }
            usleep(1_000)
        }
        return true
    }

    @Test func theParentIsGoneWhenTheParentPidChanges() {
        #expect(!ParentWatchdog.parentIsGone(expected: 4242, current: 4242))
        #expect(ParentWatchdog.parentIsGone(expected: 4242, current: 1))       // adopted by init
        #expect(ParentWatchdog.parentIsGone(expected: 4242, current: 4000))    // adopted by a subreaper
        #expect(!ParentWatchdog.parentIsGone(expected: getppid(), current: getppid()))
    }

    @Test func reactsOnceWhenTheParentChanges() {
        let parent = FakeParent(4242)
        let calls = Calls()
        ParentWatchdog.watch(expectedParent: 4242, interval: 0.01, currentParent: { parent.pid }) { calls.record() }
        usleep(100_000)  // ten checks or so, with the parent alive
        #expect(calls.count == 0)
        parent.pid = 1
        #expect(Self.waitUntil { calls.count > 0 }, "the watchdog did not notice the parent's death")
        #expect(!calls.onCallingThread)
        parent.pid = 4242
        parent.pid = 2
        usleep(100_000)  // the watching thread has stopped: no second call
        #expect(calls.count == 1)
    }

    @Test func reactsAtOnceWhenTheParentIsAlreadyGone() {
        let calls = Calls()
        // An hour between checks: only the check made before the thread starts can notice in time.
        ParentWatchdog.watch(expectedParent: 4242, interval: 3600, currentParent: { 1 }) { calls.record() }
        #expect(calls.count == 1)
        #expect(calls.onCallingThread)
    }

    @Test func theRealParentIsNotGone() {
        // This test process's own parent is alive (it is running the tests), so the default lookup sees no change.
        let calls = Calls()
        ParentWatchdog.watch(expectedParent: getppid(), interval: 0.02) { calls.record() }
        usleep(100_000)
        #expect(calls.count == 0)
    }

    @Test func theExpectedParentComesFromTheEnvironment() {
        let name = WorkerProcess.parentEnvironmentVariable
        #expect(name == "TUNEDKERNELS_WORKER_PARENT")
        #expect(ParentWatchdog.expectedParentFromEnvironment([name: "4242"]) == 4242)
        // Absent or not a pid: the current parent, as for a worker started by hand.
        #expect(ParentWatchdog.expectedParentFromEnvironment([:]) == getppid())
        for text in ["", "abc", "0", "-5", "12x", "99999999999999999999"] {
            #expect(ParentWatchdog.expectedParentFromEnvironment([name: text]) == getppid(), "\(text)")
        }
    }
}
