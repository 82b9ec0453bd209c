//! Protocol, transports and client SDK. Not built yet.
