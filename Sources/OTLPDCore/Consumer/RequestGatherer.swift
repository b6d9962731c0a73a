/// A stage that holds requests to send them on together (the batch
/// processor), and so must know how many more are on their way to it: a
/// batch that waits for requests that cannot come only delays its
/// clients' answers.
///
/// The pipeline graph counts every request that enters the stretch of
/// pipeline ending at the gatherer (from the pipeline's entry, or from the
/// previous gatherer) with a `GathererFeed` there.
public protocol RequestGatherer: Sendable {
    /// A request entered the stretch of pipeline that leads to this stage.
    func requestEntered()
    /// A request that entered has come back out (answered, or refused on the way).
    func requestLeft()
}

/// The start of the stretch of pipeline that leads to a gatherer: tells it
/// of each request that goes in and comes back out.
public struct GathererFeed: Consumer {
    public let next: any Consumer
    public let gatherer: any RequestGatherer

    public init(next: any Consumer, gatherer: any RequestGatherer) {
        self.next = next
        self.gatherer = gatherer
    }

    public func consume(_ batch: consuming TelemetryBatch) async throws(ConsumeError) -> Kept {
        self.gatherer.requestEntered()
        defer { self.gatherer.requestLeft() }
        return try await self.next.consume(batch)
    }
}
