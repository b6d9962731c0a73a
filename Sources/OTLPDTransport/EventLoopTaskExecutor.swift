import NIOCore

/// Runs a request's task on the event loop of its connection. A request
/// starts there (`Task.immediate`); when the pipeline waits (a file write),
/// the task resumes on the same loop instead of Swift's shared pool, so its
/// answer is written without another thread hop.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
