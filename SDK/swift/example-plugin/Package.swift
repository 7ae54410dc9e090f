// swift-tools-version:6.0
// A Plexus agent in a package of its own: it depends on the PlexusAgent
// library product of the Plexus repository, here by path (SDK/swift/README.md
// says how from git), and builds libupper.so, a `.dynamic` library the host
// loads (`swift build -c release`, then copy .build/release/libupper.so into
// the host's plugins directory). ./test.sh builds it and calls it.
import PackageDescription

let package = Package(
    name: "upper",
    products: [
        .library(name: "upper", type: .dynamic, targets: ["Upper"]),
    ],
    dependencies: [
        .package(name: "Plexus", path: "../../.."),
    ],
    targets: [
        .target(name: "Upper", dependencies: [.product(name: "PlexusAgent", package: "Plexus")]),
    ]
)
