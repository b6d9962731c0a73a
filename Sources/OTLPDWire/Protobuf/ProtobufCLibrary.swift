internal import CProtobufC

/// The libprotobuf-c this process runs with.
package enum ProtobufCLibrary {
    package static var version: String {
        String(cString: protobuf_c_version())
    }
}
