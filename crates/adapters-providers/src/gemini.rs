//! Google Gemini generateContent wire format (being built).
