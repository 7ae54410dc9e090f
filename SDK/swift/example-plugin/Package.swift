// swift-tools-version:6.0
// A Plexus agent in a package of its own: it depends on the PlexusAgent
// library product of the Plexus repository (here by path; from another
// place, `.package(url: "<the repository>", branch: "main")`) and builds
// libupper.so, a `.dynamic` library the host loads.
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
