/// The life of one server connection, apart from its streams (which
/// nghttp2 tracks): serving, then draining after a graceful-shutdown request,
/// then closed. Decides; `HTTP2ServerHandler` acts.
public enum HTTP2ServerConnection {
    public struct StateMachine: Sendable {
        enum State: Equatable {
            case serving
            /// A first GOAWAY (admitting every stream) and a PING are out.
            case draining
            /// The final GOAWAY is out; the connection closes when its streams are done.
            case goingAway
            case closed
        }

        private(set) var state: State = .serving

        public init() {}

        public enum QuiesceAction: Equatable {
            case none
            case sendShutdownNotice
        }

        /// The server is shutting down (or reloading this listener away).
        public mutating func quiesceRequested() -> QuiesceAction {
            guard self.state == .serving else { return .none }
            self.state = .draining
            return .sendShutdownNotice
        }

        public enum DrainAction: Equatable {
            case none
            case sendGoAway
        }

        /// The peer answered the PING sent with the notice, or waiting for it timed out:
        /// whatever it sent before it saw the notice has arrived.
        public mutating func drainPointReached() -> DrainAction {
            guard self.state == .draining else { return .none }
            self.state = .goingAway
            return .sendGoAway
        }

        public enum OutputAction: Equatable {
            case none
            case close
        }

        /// Output was written; `sessionActive` is nghttp2's "want read or write".
        public mutating func outputWritten(sessionActive: Bool) -> OutputAction {
            guard self.state != .closed, !sessionActive else { return .none }
            self.state = .closed
            return .close
        }

        /// The socket closed (either side).
        public mutating func channelClosed() {
            self.state = .closed
        }

        public var isServing: Bool { self.state == .serving }
    }
}
